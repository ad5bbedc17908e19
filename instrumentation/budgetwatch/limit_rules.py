"""The limits in force as Prometheus series: one recording rule per series, each revision of
the limits file bounded in time by its `effective_from` and the next one's.

Agent ids come from a person's YAML file: every value goes through budgetwatch.promql.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .limits import LimitField, Revision
from .promql import any_of, constant, number
from .spec import AGENT, MONTHLY, PER_TASK_FIELD, REVISION_LABEL, WINDOWS, Names, Window


def _rule(record: str, expr: str) -> dict[str, Any]:
    return {"record": record, "expr": expr}


def _bounds(revisions: Sequence[Revision], index: int) -> str:
    """`and on() (...)`: true from this revision's effective_from (to the second) to the next."""
    start = int(revisions[index].effective_from.timestamp())
    cond = f"vector(time()) >= {start}"
    if index + 1 < len(revisions):
        cond = f"({cond}) < {int(revisions[index + 1].effective_from.timestamp())}"
    return f"and on() ({cond})"


def _over_revisions(revisions: Sequence[Revision], terms: Sequence[str | None]) -> str | None:
    """One expression for the whole history: each revision's term bounded in time, or-ed."""
    bounded = [
        f"(\n  {term}\n) {_bounds(revisions, index)}"
        for index, term in enumerate(terms)
        if term is not None
    ]
    return "\nor\n".join(bounded) if bounded else None


def _org_limit_term(names: Names, revision: Revision, window: Window) -> str | None:
    org = revision.org
    own = getattr(org, window.limit_field)
    if own is not None:
        return f"vector({number(own)})"
    whole = None if window.prorated_from is None else getattr(org, window.prorated_from)
    if whole is not None:
        # Prorated over the days of the current billing period (those of its first month).
        return f"vector({number(whole)}) / {names.period_days}"
    return None


def _agent_limit_term(names: Names, revision: Revision, field: LimitField) -> str | None:
    """Listed agents' own limits, and the default for every other agent seen this period."""
    limits = revision.agent_limits(field)
    explicit = [
        constant(value, AGENT, agent) for agent, value in limits.items() if value is not None
    ]
    default = revision.default_limit(field)
    parts: list[str] = []
    if explicit:
        parts.append(any_of(explicit))
    if default is not None:
        seen = f"{names.agent_to_date(MONTHLY)} * 0 + {number(default)}"
        if limits:
            # Listed agents (explicit or exempt) never fall back to the default.
            listed = any_of([constant(1, AGENT, agent) for agent in limits])
            seen = f"({seen}) unless on({AGENT}) {listed}"
        parts.append(seen)
    return " or ".join(f"({part})" for part in parts) if parts else None


def limit_rules(names: Names, revisions: Sequence[Revision]) -> list[dict[str, Any]]:
    """The revision in force and its limits, as series (one rule per series)."""
    info = _over_revisions(
        revisions,
        [
            f'label_replace(vector(1), "{REVISION_LABEL}", "{r.revision}", "", "")'
            for r in revisions
        ],
    )
    assert info is not None
    rules = [_rule(names.limits_info, info)]
    for window in WINDOWS:
        org = _over_revisions(revisions, [_org_limit_term(names, r, window) for r in revisions])
        if org is not None:
            rules.append(_rule(names.org_limit(window), org))
        agent = _over_revisions(
            revisions, [_agent_limit_term(names, r, window.limit_field) for r in revisions]
        )
        if agent is not None:
            rules.append(_rule(names.agent_limit(window), agent))
    per_task = _over_revisions(
        revisions, [_agent_limit_term(names, r, PER_TASK_FIELD) for r in revisions]
    )
    if per_task is not None:
        rules.append(_rule(names.agent_per_task_limit, per_task))
    return rules
