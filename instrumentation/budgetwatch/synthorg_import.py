"""Turn SynthOrg's budget settings into a budgetwatch limits file.

Input: SynthOrg's `BudgetConfig`, either a company config with a `budget:` section or that
section alone: `total_monthly` (default 100; 0 disables enforcement), `per_agent_daily_limit`
(default 10), `per_task_limit` (default 5), `alerts.warn_at / critical_at / hard_stop_at`
(75 / 90 / 100), `reset_day` (1), `currency` (USD). A key left out means SynthOrg's default, as
SynthOrg itself would read it; a limit of 0 is SynthOrg's "disabled", so no limit here.
SynthOrg's limits apply to every agent alike (its budget has no per-agent values): they become
`agent_defaults`. Keys with no Prometheus meaning (auto_downgrade, ...) are reported as ignored.
The output is checked with the limits schema before it is returned.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Any

from budgetwatch.limits import (
    API_VERSION,
    KIND,
    LimitsError,
    check_currency,
    load_yaml_document,
    parse_limits,
    read_limits_text,
)
from budgetwatch.spec import PER_TASK_FIELD

# SynthOrg's own defaults.
DEFAULTS: dict[str, Any] = {
    "total_monthly": 100.0,
    "per_agent_daily_limit": 10.0,
    "per_task_limit": 5.0,
    "reset_day": 1,
    "currency": "USD",
    "warn_at": 75,
    "critical_at": 90,
    "hard_stop_at": 100,
}
_USED_KEYS = frozenset(
    {"total_monthly", "per_agent_daily_limit", "per_task_limit", "reset_day", "currency", "alerts"}
)
_ALERT_KEYS = ("warn_at", "critical_at", "hard_stop_at")


class SynthOrgImportError(LimitsError):
    """A SynthOrg config that cannot be imported; the text names the file and the key."""


@dataclass
class ImportResult:
    """The limits file text, and notes for the person running the import."""

    text: str
    notes: list[str] = field(default_factory=list)


def billing_period_start(now: datetime, reset_day: int) -> datetime:
    """00:00 UTC of the day the billing period containing `now` began."""
    now = now.astimezone(UTC)
    if now.day >= reset_day:
        return datetime(now.year, now.month, reset_day, tzinfo=UTC)
    year, month = (now.year, now.month - 1) if now.month > 1 else (now.year - 1, 12)
    return datetime(year, month, reset_day, tzinfo=UTC)


def _number(source: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SynthOrgImportError(f"{source}: {key}: must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise SynthOrgImportError(f"{source}: {key}: must be a finite number >= 0, got {value!r}")
    return float(value)


def _yaml_number(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def _budget_section(data: Any, source: str) -> tuple[Mapping[str, Any], str]:
    """The budget settings and the key prefix to name them by in messages."""
    if not isinstance(data, Mapping):
        raise SynthOrgImportError(
            f"{source}: the top level must be a mapping, got {type(data).__name__}"
        )
    if "budget" in data:
        budget = data["budget"] if data["budget"] is not None else {}
        if not isinstance(budget, Mapping):
            raise SynthOrgImportError(f"{source}: budget: must be a mapping, got {budget!r}")
        return budget, "budget."
    if not set(data) & _USED_KEYS:
        raise SynthOrgImportError(
            f"{source}: no SynthOrg budget settings found (expected a budget: section, or "
            "keys such as total_monthly and per_agent_daily_limit)"
        )
    return data, ""


def _alert_levels(
    budget: Mapping[str, Any], source: str, prefix: str, notes: list[str]
) -> list[tuple[str, float]]:
    """SynthOrg's alert levels (warn_at, critical_at, hard_stop_at), checked and in order."""
    alerts = budget.get("alerts")
    alerts = {} if alerts is None else alerts
    if not isinstance(alerts, Mapping):
        raise SynthOrgImportError(f"{source}: {prefix}alerts: must be a mapping, got {alerts!r}")
    notes += [
        f"ignored {prefix}alerts.{key}: not a SynthOrg alert level"
        for key in sorted(map(str, set(alerts) - set(_ALERT_KEYS)))
    ]
    levels = [
        (key, _number(source, f"{prefix}alerts.{key}", alerts.get(key, DEFAULTS[key])))
        for key in _ALERT_KEYS
    ]
    if levels[0][1] <= 0:
        raise SynthOrgImportError(
            f"{source}: {prefix}alerts.warn_at: must be greater than 0 for Prometheus alerts"
        )
    for (low_key, low), (high_key, high) in itertools.pairwise(levels):
        if not low < high:
            raise SynthOrgImportError(
                f"{source}: {prefix}alerts.{high_key}: must be greater than {low_key} "
                f"({_yaml_number(low)}), got {_yaml_number(high)}"
            )

    return levels


def _limits_lines(
    header: list[str],
    currency: str,
    reset_day: int,
    levels: list[tuple[str, float]],
    start: datetime,
    org_monthly: str,
    agent_daily: str,
    agent_task: str,
) -> list[str]:
    """The limits file's lines (comments say where each value came from)."""
    return [
        *header,
        f"apiVersion: {API_VERSION}",
        f"kind: {KIND}",
        # Quoted: a code such as NO would otherwise be read as a YAML boolean.
        f'currency: "{currency}"',
        "billing:",
        f"  reset_day: {reset_day}",
        "thresholds:  # SynthOrg alerts.warn_at / critical_at / hard_stop_at",
        f"  warning: {_yaml_number(levels[0][1])}",
        f"  critical: {_yaml_number(levels[1][1])}",
        f"  exhausted: {_yaml_number(levels[2][1])}",
        "revisions:",
        "  - revision: 1",
        f"    effective_from: {start.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}",
        "    org:",
        f"      monthly: {org_monthly}  # SynthOrg total_monthly",
        *(
            ["      # daily absent: the monthly budget prorated over the billing period"]
            if org_monthly != "null"
            else []
        ),
        "    agent_defaults:",
        f"      daily: {agent_daily}  # SynthOrg per_agent_daily_limit",
        f"      {PER_TASK_FIELD}: {agent_task}  # SynthOrg per_task_limit",
        "    agents: {}",
    ]


def import_synthorg(
    data: Any,
    source: str,
    *,
    effective_from: datetime | None = None,
    now: datetime | None = None,
) -> ImportResult:
    """SynthOrg budget settings (parsed YAML) -> a validated limits file text.

    `effective_from` defaults to the start of the billing period that contains `now`.
    """
    budget, prefix = _budget_section(data, source)
    notes = [
        f"ignored {prefix}{key}: no Prometheus budget equivalent"
        for key in sorted(map(str, set(budget) - _USED_KEYS))
    ]

    def get(key: str) -> Any:
        return budget.get(key, DEFAULTS[key])

    total = _number(source, f"{prefix}total_monthly", get("total_monthly"))
    per_agent = _number(source, f"{prefix}per_agent_daily_limit", get("per_agent_daily_limit"))
    per_task = _number(source, f"{prefix}per_task_limit", get("per_task_limit"))
    reset_day = get("reset_day")
    if isinstance(reset_day, bool) or not isinstance(reset_day, int) or not 1 <= reset_day <= 28:
        raise SynthOrgImportError(
            f"{source}: {prefix}reset_day: must be an integer from 1 to 28, got {reset_day!r}"
        )
    currency = get("currency")
    problem = check_currency(currency) if isinstance(currency, str) else "must be a string"
    if problem:
        raise SynthOrgImportError(f"{source}: {prefix}currency: {problem}")

    levels = _alert_levels(budget, source, prefix, notes)

    name = PurePath(source).name
    header = [
        f"# Imported by budgetwatch import-synthorg from {name} (SynthOrg budget settings).",
        "# Check with `budgetwatch validate`, then render the rules (`make generate`).",
    ]
    if total == 0:
        # SynthOrg: a zero monthly budget disables enforcement and its limits are ignored at
        # runtime; so no org limit and no per-agent limit here either (spend is still recorded).
        org_monthly = agent_daily = agent_task = "null"
        notes.append(
            f"{prefix}total_monthly is 0 (SynthOrg enforcement disabled): "
            "no org or per-agent limits; spend is still recorded"
        )
        header.append("# total_monthly was 0 (SynthOrg enforcement disabled): no limits below.")
    else:
        org_monthly = _yaml_number(total)
        agent_daily = _yaml_number(per_agent) if per_agent > 0 else "null"
        if per_agent == 0:
            notes.append(f"{prefix}per_agent_daily_limit is 0: agents get no daily limit")
        agent_task = _yaml_number(per_task) if per_task > 0 else "null"
        if per_task == 0:
            notes.append(f"{prefix}per_task_limit is 0: agents get no per-task limit")

    start = effective_from or billing_period_start(now or datetime.now(UTC), reset_day)
    lines = _limits_lines(
        header, currency, reset_day, levels, start, org_monthly, agent_daily, agent_task
    )
    text = "\n".join(lines) + "\n"
    try:
        parse_limits(text, name)
    except LimitsError as err:  # pragma: no cover - the checks above should make this unreachable
        raise SynthOrgImportError(f"{source}: the imported limits do not validate: {err}") from None
    return ImportResult(text=text, notes=notes)


def import_synthorg_file(
    path: str,
    *,
    effective_from: datetime | None = None,
    now: datetime | None = None,
) -> ImportResult:
    """Read a SynthOrg config file (YAML, duplicate keys refused) and import it."""
    try:
        data = load_yaml_document(read_limits_text(path), path)
    except LimitsError as err:
        raise SynthOrgImportError(str(err)) from None
    return import_synthorg(data, path, effective_from=effective_from, now=now)
