"""Prometheus alerting rules generated from a limits file: budget levels, forecast, absence.

Every alert reads a series the recording rules publish (budgetwatch.rules); names, levels,
labels and windows come from the bundle spec (budgetwatch.spec). The rule files are written by
`budgetwatch.rules.render_rule_files`.
"""

from __future__ import annotations

from typing import Any

from .limits import Limits
from .promql import indent, number
from .spec import (
    AGENT,
    DAILY,
    FIGURE_LABEL,
    LEVEL_LABEL,
    LIMIT_LABEL,
    LOWER_BOUND,
    SEVERITY_LABEL,
    WINDOW_LABEL,
    WINDOWS,
    Alerts,
    Level,
    Names,
    Window,
    levels_with_thresholds,
)

DEFAULT_RUNBOOK_BASE_URL = "alerts/runbooks.md"
ALERTS_FILE = "budget-alerts.yml"


def alert_names(limits: Limits) -> dict[str, str]:
    """alertname -> runbook anchor id, for every alert the rules define."""
    return Alerts(limits.namespace).anchors()


def _query_value(series: str) -> str:
    """Template text printing the current value of a label-less series, two decimals."""
    return (
        f'{{{{ with "{series}" | query }}}}{{{{ . | first | value | printf "%.2f" }}}}{{{{ end }}}}'
    )


# Alert text for figures that are lower bounds: `$since` is set (to when the figure started
# to be partial) by a template query on the partial helper, and the text says "at least".
_at_least = "{{ if $since }}at least {{ end }}"
_lower_bound_note = (
    "{{ if $since }} This is a lower bound: it counts from {{ $since }}, when a process "
    "was first seen with a running counter (spend before that is unknown).{{ end }}"
)
_PCT = '{{ $value | printf "%.1f" }}'
_AGENT_TEXT = f"{{{{ $labels.{AGENT} }}}}"


def _partial_since_agent(names: Names, window: Window) -> str:
    """`$since`: when the agent's figure of the window became a lower bound.

    A template query, run only by the rule for partial figures (a few agents): a label would
    change the alert's identity when the figure becomes partial."""
    query = f"min({names.partial_since(window)}{{{AGENT}=%q}})"
    return (
        '{{ $since := "" }}'
        f'{{{{ with printf "{query}" $labels.{AGENT} | query }}}}'
        "{{ $since = . | first | value | humanizeTimestamp }}{{ end }}"
    )


def _partial_since_org(names: Names, window: Window) -> str:
    query = f"min({names.partial_since(window)})"
    return (
        '{{ $since := "" }}'
        f'{{{{ with query "{query}" }}}}'
        "{{ $since = . | first | value | humanizeTimestamp }}{{ end }}"
    )


def _with_limit_label(firing: str, limit_series: str, over: str | None = None) -> str:
    """`firing` (agents' series) with the agent's limit added as label `limit`.

    The limit joins as a label rather than a template query per firing agent, and only the
    limits of the agents `over` (default: `firing`) are turned into labels: count_values over
    every agent's limit costs more than the rest of the rule at 10,000 agents."""
    return (
        f"(\n{indent(firing, 2)}\n)\n"
        f"* on({AGENT}) group_left({LIMIT_LABEL}) (\n"
        f'  count_values by ({AGENT}) (\n    "{LIMIT_LABEL}",\n'
        f"    {limit_series}\n    and on({AGENT}) ({over or firing})\n  ) * 0 + 1\n)"
    )


def _agent_alerts(
    names: Names, level: Level, threshold: str, window: Window, currency: str
) -> list[tuple[str, str, str, dict[str, str]]]:
    """(expr, summary, description, extra labels) of an agent threshold alert: one rule for
    exact figures and one for lower bounds, with the same alertname (an alert is one alert
    whichever rule raises it) and the lower bound's label. Prometheus expands every annotation
    of every firing alert at every evaluation: the exact rule, nearly all of them, keeps its
    text short and query-free."""
    over = f"{names.agent_percent(window)} >= {threshold}"
    partial = f'{names.agent_cost_partial}{{{WINDOW_LABEL}="{window.name}"}}'
    limit = names.agent_limit(window)
    summary = f"Agent {_AGENT_TEXT} used {_PCT}% of its {window.name} budget"
    spent = (
        f"of its {window.name} limit of {{{{ $labels.{LIMIT_LABEL} }}}} {currency} {window.when}"
    )
    exact = f"Agent {_AGENT_TEXT} has spent {_PCT}% {spent} ({level.name} at {threshold}%)."
    lower = (
        f"{_partial_since_agent(names, window)}Agent {_AGENT_TEXT} has spent at least {_PCT}% "
        f"{spent} ({level.name} at {threshold}%).{_lower_bound_note}"
    )
    return [
        (
            _with_limit_label(f"{over}\nunless on({AGENT}) {partial}", limit, over),
            summary,
            exact,
            {},
        ),
        (
            _with_limit_label(f"{over}\nand on({AGENT}) {partial}", limit, over),
            summary,
            lower,
            {FIGURE_LABEL: LOWER_BOUND},
        ),
    ]


def _org_alerts(
    names: Names, level: Level, threshold: str, window: Window, currency: str
) -> list[tuple[str, str, str, dict[str, str]]]:
    """(expr, summary, description, extra labels) of the org's alert for a level and window."""
    expr = f"{names.org_percent(window)} >= {threshold}"
    spent = _query_value(names.org_to_date(window))
    of_limit = _query_value(names.org_limit(window))
    since = _partial_since_org(names, window)
    summary = f"{since}The organization used {_at_least}{_PCT}% of its {window.name} budget"
    description = (
        f"{since}The organization has spent {_at_least}{spent} {currency} {window.when} "
        f"of its {window.name} limit of {of_limit} {currency} ({_PCT}%, {level.name} at "
        f"{threshold}%).{_lower_bound_note}"
    )
    return [(expr, summary, description, {})]


def _budget_alerts(limits: Limits, runbook_base_url: str) -> list[dict[str, Any]]:
    """Per level: the agents' alerts (both windows), then the org's."""
    names = Names(limits.namespace)
    alerts = Alerts(limits.namespace)
    anchors = alerts.anchors()
    out: list[dict[str, Any]] = []
    for level, value in levels_with_thresholds(limits.thresholds):
        threshold = number(value)
        for alertname, build in (
            (alerts.agent_budget(level), _agent_alerts),
            (alerts.org_budget(level), _org_alerts),
        ):
            for window in WINDOWS:
                for expr, summary, description, extra in build(
                    names, level, threshold, window, limits.currency
                ):
                    labels = {
                        WINDOW_LABEL: window.name,
                        SEVERITY_LABEL: level.severity,
                        LEVEL_LABEL: level.name,
                        **extra,
                    }
                    out.append(
                        {
                            "alert": alertname,
                            "expr": expr,
                            "for": "1m",
                            "labels": labels,
                            "annotations": {
                                "summary": summary,
                                "description": description,
                                "runbook_url": f"{runbook_base_url}#{anchors[alertname]}",
                            },
                        }
                    )
    return out


def _forecast_alert(limits: Limits, runbook_base_url: str) -> dict[str, Any]:
    names = Names(limits.namespace)
    forecast = Alerts(limits.namespace).exhaustion_forecast
    currency = limits.currency
    return {
        "alert": forecast,
        "expr": _with_limit_label(names.exhaustion_seconds, names.agent_limit(DAILY)),
        "for": "5m",
        "labels": {WINDOW_LABEL: DAILY.name, SEVERITY_LABEL: "warning"},
        "annotations": {
            "summary": f"Agent {_AGENT_TEXT} will exhaust its daily budget before 00:00 UTC",
            "description": (
                f"At the rate of the last hour, agent {_AGENT_TEXT} reaches its daily limit of "
                f"{{{{ $labels.{LIMIT_LABEL} }}}} {currency} in "
                "{{ $value | humanizeDuration }}."
            ),
            "runbook_url": f"{runbook_base_url}#{alert_names(limits)[forecast]}",
        },
    }


def _absent_alert(limits: Limits, runbook_base_url: str) -> dict[str, Any]:
    names = Names(limits.namespace)
    absent = Alerts(limits.namespace).telemetry_absent
    return {
        "alert": absent,
        # Cost series existed in the last hour and none has had a sample for 5 minutes (the
        # count recorded from them is then absent: one series to read, not every raw one).
        "expr": (
            f"absent({names.cost_series})\nand on() (max_over_time({names.cost_series}[1h]) > 0)"
        ),
        "for": "5m",
        "labels": {SEVERITY_LABEL: "critical"},
        "annotations": {
            "summary": "Budget telemetry stopped arriving",
            "description": (
                f"No {names.cost_total} series has had a sample for 10 minutes although "
                "some did within the last hour: spend is not being recorded, so budgets "
                "and alerts are blind. Check the application's OTLP export, the collector "
                "and its remote write to Prometheus."
            ),
            "runbook_url": f"{runbook_base_url}#{alert_names(limits)[absent]}",
        },
    }


def alert_groups(
    limits: Limits,
    runbook_base_url: str = DEFAULT_RUNBOOK_BASE_URL,
    interval: str = "1m",
    for_duration: str | None = None,
) -> list[Any]:
    """The alerting group; `for_duration` replaces every alert's `for:` (end-to-end tests)."""
    alerts = _budget_alerts(limits, runbook_base_url)
    alerts.append(_forecast_alert(limits, runbook_base_url))
    alerts.append(_absent_alert(limits, runbook_base_url))
    return [alert_group(f"{limits.namespace}-budget-alerts", interval, alerts, for_duration)]


def alert_group(
    name: str, interval: str, rules: list[dict[str, Any]], for_duration: str | None
) -> dict[str, Any]:
    """An alert group; `for_duration` replaces every alert's `for:` (end-to-end tests)."""
    if for_duration is not None:
        for rule in rules:
            rule["for"] = for_duration
    return {"name": name, "interval": interval, "rules": rules}


# Shared with budgetwatch.early_warning_rules.
AGENT_TEXT = _AGENT_TEXT
with_limit_label = _with_limit_label
