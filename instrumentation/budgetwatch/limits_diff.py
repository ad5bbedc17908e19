"""What changes between two limits files, in the words a pull-request reviewer needs.

The comparison is of the limits *in force*, not of the YAML: at every instant where either
file starts a revision, the limit each subject (the org, the agent defaults, every agent
named in either file) gets under the old file is compared with the one under the new file.
So moving an agent from an explicit 10 to a default of 10 is no change, and a new revision
shows up as "from <its effective_from>".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime

from budgetwatch.limits import AGENT_LIMIT_FIELDS, LimitField, Limits, Revision, Window
from budgetwatch.spec import WINDOW_NAMES
from budgetwatch.spec import window as spec_window

_PLAIN_ID = re.compile(r"\w[\w.:/@-]*")
_WINDOWS: tuple[Window, ...] = WINDOW_NAMES


@dataclass(frozen=True)
class Limit:
    """One limit in force: the number (None = none) and how it came about."""

    value: float | None
    how: str  # "set", "default", "exempt", "none", "prorated", "no revision"

    def same_as(self, other: Limit) -> bool:
        # Only the figure matters to the rules, except that "no limit" and "prorated"
        # (org daily) are different behaviours with the same missing number.
        if self.value is not None or other.value is not None:
            return self.value == other.value
        return (self.how == "prorated") == (other.how == "prorated")

    def text(self, currency: str) -> str:
        if self.how == "no revision":
            return "no limits (no revision in force)"
        if self.value is None:
            return {
                "exempt": "exempt",
                "prorated": "prorated from monthly",
                "default": "none (default)",
            }.get(self.how, "none")
        figure = f"{self.value:,.10g} {currency}"
        return f"{figure} (default)" if self.how == "default" else figure


@dataclass(frozen=True)
class Change:
    subject: str  # "org", "agent defaults", or an agent id
    window: LimitField  # a window's name, or PER_TASK_FIELD (agents only)
    since: datetime | None  # None: the start of the file's history
    old: Limit
    new: Limit
    old_revision: int | None
    new_revision: int | None


def _org_limit(revision: Revision | None, window: Window) -> Limit:
    if revision is None:
        return Limit(None, "no revision")
    own = revision.org.limit(window)
    if own is not None:
        return Limit(own, "set")
    whole = spec_window(window).prorated_from
    prorated = whole is not None and revision.org.limit(whole) is not None
    return Limit(None, "prorated" if prorated else "none")


def _default_limit(revision: Revision | None, window: LimitField) -> Limit:
    if revision is None:
        return Limit(None, "no revision")
    value = revision.default_limit(window)
    return Limit(value, "set" if value is not None else "none")


def _agent_limit(revision: Revision | None, agent_id: str, window: LimitField) -> Limit:
    if revision is None:
        return Limit(None, "no revision")
    listed = revision.agents.get(agent_id)
    if listed is None or not listed.sets(window):
        value = revision.default_limit(window)
        return Limit(value, "default")
    value = listed.limit(window)
    return Limit(value, "set" if value is not None else "exempt")


def _agents(old: Limits, new: Limits) -> list[str]:
    agents = {a for limits in (old, new) for rev in limits.revisions for a in rev.agents}
    return sorted(agents)


def limit_changes(old: Limits, new: Limits) -> list[Change]:
    """Every change in the limits in force, per subject and window, in time order."""
    instants = sorted({r.effective_from for limits in (old, new) for r in limits.revisions})
    changes: list[Change] = []
    subjects: list[tuple[str, str | None]] = [("org", None), ("agent defaults", None)]
    subjects += [(agent_id, agent_id) for agent_id in _agents(old, new)]
    for subject, agent_id in subjects:
        # The org has a limit per window; agents also one per task.
        fields = _WINDOWS if subject == "org" and agent_id is None else AGENT_LIMIT_FIELDS
        for window in fields:
            previous: tuple[Limit, Limit] | None = None
            for instant in instants:
                old_rev, new_rev = old.revision_at(instant), new.revision_at(instant)
                if agent_id is not None:
                    pair = (
                        _agent_limit(old_rev, agent_id, window),
                        _agent_limit(new_rev, agent_id, window),
                    )
                elif subject == "org":
                    name = spec_window(window).name
                    pair = (_org_limit(old_rev, name), _org_limit(new_rev, name))
                else:
                    pair = (_default_limit(old_rev, window), _default_limit(new_rev, window))
                differs = not pair[0].same_as(pair[1])
                was_differing = previous is not None and not previous[0].same_as(previous[1])
                # Report where a difference starts, changes, or ends (back in agreement).
                if (differs and pair != previous) or (was_differing and not differs):
                    changes.append(
                        Change(
                            subject=subject,
                            window=window,
                            since=instant,
                            old=pair[0],
                            new=pair[1],
                            old_revision=old_rev.revision if old_rev else None,
                            new_revision=new_rev.revision if new_rev else None,
                        )
                    )
                previous = pair
    return changes


def _settings_changes(old: Limits, new: Limits) -> list[str]:
    lines = []
    if old.namespace != new.namespace:
        lines.append(
            f"namespace: {old.namespace} -> {new.namespace} "
            "(every series and alert name changes: dashboards, queries and silences must follow)"
        )
    if old.currency != new.currency:
        lines.append(f"currency: {old.currency} -> {new.currency} (a label: no conversion)")
    if old.billing.reset_day != new.billing.reset_day:
        lines.append(
            f"billing.reset_day: {old.billing.reset_day} -> {new.billing.reset_day} "
            "(the billing period starts on another day)"
        )
    for level in ("warning", "critical", "exhausted"):
        before, after = getattr(old.thresholds, level), getattr(new.thresholds, level)
        if before != after:
            lines.append(f"thresholds.{level}: {before:g}% -> {after:g}%")
    return lines + _early_warning_changes(old, new)


def _text(value: object) -> str:
    return f"{value:g}" if isinstance(value, float | int) else str(value)


def _early_warning_changes(old: Limits, new: Limits) -> list[str]:
    """The forecast, burn_rate, spike, task_limit and coverage sections, field by field
    (defaults included)."""
    lines = []
    for section in ("forecast", "spike", "task_limit", "coverage"):
        before, after = getattr(old, section), getattr(new, section)
        for name, field in type(before).model_fields.items():
            a, b = getattr(before, name), getattr(after, name)
            if a != b:
                lines.append(f"{section}.{field.alias or name}: {_text(a)} -> {_text(b)}")
    if old.burn_rate.for_ != new.burn_rate.for_:
        lines.append(f"burn_rate.for: {old.burn_rate.for_} -> {new.burn_rate.for_}")

    def pairs(limits: Limits) -> dict[tuple[str, str], str]:
        return {
            (p.long, p.short): f"{_text(p.factor)}x {p.severity}"
            for p in limits.burn_rate.fastest_first()
        }

    before_pairs, after_pairs = pairs(old), pairs(new)
    for key in sorted(before_pairs.keys() | after_pairs.keys()):
        a, b = before_pairs.get(key), after_pairs.get(key)
        name = f"burn_rate pair {key[0]}/{key[1]}"
        if a is None:
            lines.append(f"{name}: added ({b})")
        elif b is None:
            lines.append(f"{name}: removed (was {a})")
        elif a != b:
            lines.append(f"{name}: {a} -> {b}")
    return lines


def _revision_changes(old: Limits, new: Limits) -> list[str]:
    old_by_number = {r.revision: r for r in old.revisions}
    new_by_number = {r.revision: r for r in new.revisions}
    lines = []
    for number in sorted(old_by_number.keys() | new_by_number.keys()):
        before, after = old_by_number.get(number), new_by_number.get(number)
        if before is None and after is not None:
            lines.append(f"added revision {number}, effective from {after.effective_from_text}")
        elif after is None and before is not None:
            lines.append(
                f"removed revision {number} (was effective from {before.effective_from_text})"
            )
        elif before is not None and after is not None and before != after:
            moved = (
                f", effective_from {before.effective_from_text} -> {after.effective_from_text}"
                if before.effective_from != after.effective_from
                else ""
            )
            lines.append(f"edited revision {number}{moved}")
    return lines


def _subject_title(subject: str) -> str:
    if subject == "org":
        return "org"
    if subject == "agent defaults":
        return "agent defaults (every agent not listed)"
    # Quoted when needed, so an id with spaces or quotes reads unambiguously.
    return (
        f"agent {subject}"
        if _PLAIN_ID.fullmatch(subject)
        else f"agent {json.dumps(subject, ensure_ascii=False)}"
    )


def _when(change: Change, now: datetime | None) -> str:
    assert change.since is not None
    stamp = change.since.strftime("%Y-%m-%dT%H:%M:%SZ")
    revisions = f"revision {change.old_revision or '-'} -> {change.new_revision or '-'}"
    past = ", already in force" if now is not None and change.since <= now else ""
    return f"from {stamp} ({revisions}{past})"


def render_diff(
    old: Limits,
    new: Limits,
    old_name: str,
    new_name: str,
    *,
    now: datetime | None = None,
) -> str:
    """A readable report of what changes from `old_name` to `new_name`.

    With `now`, changes that start at or before it are marked "already in force": the
    rules apply them as soon as they are loaded.
    """
    out = [f"budgetwatch diff {old_name} -> {new_name}"]
    settings = _settings_changes(old, new)
    revisions = _revision_changes(old, new)
    changes = limit_changes(old, new)
    if not (settings or revisions or changes):
        out.append("no changes in limits, thresholds or settings")
        return "\n".join(out) + "\n"
    if settings:
        out += ["", "settings:"] + [f"  {line}" for line in settings]
    if revisions:
        out += ["", "revisions:"] + [f"  {line}" for line in revisions]
    if changes:
        out += ["", "limits in force:"]
        subject = None
        for change in changes:
            if change.subject != subject:
                subject = change.subject
                out.append(f"  {_subject_title(subject)}")
            old_text, new_text = change.old.text(old.currency), change.new.text(new.currency)
            if not change.old.same_as(change.new):
                what = f"{old_text} -> {new_text}"
            elif old_text == new_text:
                what = f"{new_text} in both again"
            else:
                what = f"the same in both again ({old_text} / {new_text})"
            out.append(f"    {change.window}: {what}, {_when(change, now)}")
    elif revisions:
        out += ["", "limits in force: unchanged"]
    return "\n".join(out) + "\n"
