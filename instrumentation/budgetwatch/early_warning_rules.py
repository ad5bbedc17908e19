"""Early warning before the money is gone: the billing-period forecast, multiwindow burn-rate
alerts and the runaway-agent spike alert (docs/rules.md, "Early warning").

Everything reads the per-agent running total the cost group carries
(`<ns>:agent_cost:running_total`: every increase ever counted, never reset). The spend over a
trailing window is its value now minus its value one window ago: one sample per agent and
window, whatever the window's length, and no special case at 00:00 UTC or at the start of a
billing period. A catch-up after a silent pipeline lands at the first evaluation after it:
windows much longer than the silence hold the true spend, short ones overstate it, which is
why every alert here needs a long window (or a for: longer than the short one) to agree.
"""

from __future__ import annotations

from typing import Any

from .alert_rules import AGENT_TEXT, alert_group, with_limit_label
from .limits import Limits
from .limits_early_warning import BurnPair, duration_seconds
from .promql import indent, number
from .spec import (
    AGENT,
    LONG_WINDOW_LABEL,
    MONTHLY,
    SEVERITY_LABEL,
    SHORT_WINDOW_LABEL,
    WINDOW_LABEL,
    Alerts,
    Names,
)

# The last running total before the window began: the dense series (one sample), else its
# checkpoint within half an hour before (an evaluator gap at that instant).
_FALLBACK = "30m"


def _rule(record: str, expr: str) -> dict[str, Any]:
    return {"record": record, "expr": expr}


def _at(names: Names, ago: str) -> str:
    running = names.running_total
    return (
        f"({running} offset {ago}\n"
        f" or last_over_time({running}_checkpoint[{_FALLBACK}] offset {ago}))"
    )


def windows(limits: Limits) -> list[str]:
    """Every trailing window a rule needs a spend figure for, shortest first."""
    found = {limits.forecast.rate_window}
    for pair in limits.burn_rate.pairs:
        found |= {pair.long, pair.short}
    return sorted(found, key=duration_seconds)


def _spend_rules(names: Names, limits: Limits) -> list[dict[str, Any]]:
    """Spend per agent over each trailing window. Absent for an agent whose running total is
    younger than the window (or restarted after a long evaluator gap: negative, dropped)."""
    return [
        _rule(
            names.agent_spend(w),
            f"({names.running_total} - on({AGENT})\n{indent(_at(names, w), 2)}\n) >= 0",
        )
        for w in windows(limits)
    ]


def _period_seconds(names: Names) -> str:
    return f"({names.period_days} * {86400})"


def _burn_rules(names: Names, limits: Limits) -> list[dict[str, Any]]:
    """Burn rate = spend rate over the window / even pace (monthly limit / period length)."""
    used = sorted(
        {w for p in limits.burn_rate.pairs for w in (p.long, p.short)}, key=duration_seconds
    )
    rules = []
    for w in used:
        scale = f"{_period_seconds(names)} / {duration_seconds(w)}"
        rules.append(
            _rule(
                names.agent_burn_rate(w),
                f"{names.agent_spend(w)} / on({AGENT}) {names.agent_limit(MONTHLY)}\n"
                f"* on() group_left() {scale}",
            )
        )
        rules.append(
            _rule(
                names.org_burn_rate(w),
                f"sum({names.agent_spend(w)}) / on() {names.org_limit(MONTHLY)}\n* on() {scale}",
            )
        )
    return rules


def _forecast_rules(names: Names, limits: Limits) -> list[dict[str, Any]]:
    """Period-to-date + the trailing rate x the time left; quiet until the period is
    `min_history` old."""
    f = limits.forecast
    start = names.window_start(MONTHLY)
    left = f"({start} + {_period_seconds(names)} - time())"
    old_enough = f"(time() - {start} >= {duration_seconds(f.min_history)})"
    rate = names.agent_forecast_rate
    return [
        _rule(rate, f"{names.agent_spend(f.rate_window)} / {duration_seconds(f.rate_window)}"),
        _rule(
            names.agent_forecast,
            f"(\n  {names.agent_to_date(MONTHLY)}\n"
            f"  + on({AGENT}) {rate} * on() group_left() {left}\n)\n"
            f"and on({AGENT}) {names.agent_limit(MONTHLY)}\nand on() {old_enough}",
        ),
        _rule(
            names.agent_forecast_percent,
            f"{names.agent_forecast} / on({AGENT}) {names.agent_limit(MONTHLY)} * 100",
        ),
        _rule(
            names.org_forecast,
            f"({names.org_to_date(MONTHLY)} + on() (sum({rate}) or vector(0)) * on() {left})\n"
            f"and on() {old_enough}",
        ),
        _rule(
            names.org_forecast_percent,
            f"{names.org_forecast} / on() {names.org_limit(MONTHLY)} * 100",
        ),
    ]


def _spike_rules(names: Names, limits: Limits) -> list[dict[str, Any]]:
    """The recent hourly rate, and the average hourly spend over the trailing baseline before
    the recent window: the longest whole number of `min_history` steps the agent has."""
    s = limits.spike
    window_s, step_s = duration_seconds(s.window), duration_seconds(s.min_history)
    running = names.running_total
    # Read here rather than from the other group's increase<window>: same instant as below.
    recent = f"({running} - on({AGENT}) {running} offset {s.window}) >= 0"
    if window_s != 3600:
        recent = f"({recent}) * {number(3600 / window_s)}"
    terms = []
    for k in range(s.history_steps, 0, -1):
        back = f"{window_s + k * step_s}s"
        terms.append(
            f"(\n  ({running} offset {s.window} - on({AGENT}) "
            f"{running} offset {back}) >= 0\n) / {number(k * step_s / 3600)}"
        )
    return [
        _rule(names.agent_spend_hourly, recent),
        _rule(names.agent_spend_baseline, "\nor\n".join(terms)),
    ]


def early_warning_recording_groups(limits: Limits, interval: str) -> list[dict[str, Any]]:
    """Two groups: burn rates and forecast, and the spike's baseline (a week of history reads
    per agent) on its own, so that each stays cheap per evaluation and Prometheus can run them
    side by side."""
    names = Names(limits.namespace)
    rules = [
        *_spend_rules(names, limits),
        *_burn_rules(names, limits),
        *_forecast_rules(names, limits),
    ]
    ns = limits.namespace
    return [
        {"name": f"{ns}-budget-early-warning", "interval": interval, "rules": rules},
        {"name": f"{ns}-budget-spike", "interval": interval, "rules": _spike_rules(names, limits)},
    ]


# --- alerts ---------------------------------------------------------------------------------


def _alert(
    name: str,
    expr: str,
    for_: str,
    labels: dict[str, str],
    summary: str,
    description: str,
    url: str,
) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": for_,
        "labels": labels,
        "annotations": {"summary": summary, "description": description, "runbook_url": url},
    }


def _forecast_alerts(limits: Limits, names: Names, alerts: Alerts, url: Any) -> list[Any]:
    f = limits.forecast
    labels = {WINDOW_LABEL: MONTHLY.name, SEVERITY_LABEL: "warning"}
    pct = '{{ $value | printf "%.0f" }}'
    how = f"at the pace of the last {f.rate_window}"
    return [
        _alert(
            alerts.agent_forecast_overrun,
            with_limit_label(f"{names.agent_forecast_percent} >= 100", names.agent_limit(MONTHLY)),
            f.for_,
            labels,
            f"Agent {AGENT_TEXT} is on course to overrun its monthly budget",
            f"{how.capitalize()}, agent {AGENT_TEXT} will have spent {pct}% of its monthly "
            f"limit of {{{{ $labels.limit }}}} {limits.currency} by the end of the billing "
            "period.",
            url(alerts.agent_forecast_overrun),
        ),
        _alert(
            alerts.org_forecast_overrun,
            f"{names.org_forecast_percent} >= 100",
            f.for_,
            labels,
            "The organization is on course to overrun its monthly budget",
            f"{how.capitalize()}, the organization will have spent {pct}% of its monthly "
            "limit by the end of the billing period.",
            url(alerts.org_forecast_overrun),
        ),
    ]


def _burn_alerts(limits: Limits, names: Names, alerts: Alerts, url: Any) -> list[Any]:
    out = []
    for pair in limits.burn_rate.fastest_first():
        out += _burn_pair(limits, names, alerts, url, pair)
    return out


def _burn_pair(limits: Limits, names: Names, alerts: Alerts, url: Any, pair: BurnPair) -> list[Any]:
    factor = number(pair.factor)
    labels = {
        LONG_WINDOW_LABEL: pair.long,
        SHORT_WINDOW_LABEL: pair.short,
        SEVERITY_LABEL: pair.severity,
    }
    rate = '{{ $value | printf "%.1f" }}'
    tail = (
        f"(alert at {factor}x over both {pair.long} and {pair.short}; 1x spends exactly the "
        "monthly limit over the billing period)."
    )
    agent_expr = (
        f"{names.agent_burn_rate(pair.long)} >= {factor}\n"
        f"and on({AGENT}) {names.agent_burn_rate(pair.short)} >= {factor}"
    )
    org_expr = (
        f"{names.org_burn_rate(pair.long)} >= {factor}\n"
        f"and on() {names.org_burn_rate(pair.short)} >= {factor}"
    )
    return [
        _alert(
            alerts.agent_burn_rate,
            agent_expr,
            limits.burn_rate.for_,
            labels,
            f"Agent {AGENT_TEXT} burns its monthly budget at {rate}x the even pace",
            f"Over the last {pair.long}, agent {AGENT_TEXT} spent at {rate}x the pace that "
            f"would use its monthly limit exactly by the end of the period {tail}",
            url(alerts.agent_burn_rate),
        ),
        _alert(
            alerts.org_burn_rate,
            org_expr,
            limits.burn_rate.for_,
            labels,
            f"The organization burns its monthly budget at {rate}x the even pace",
            f"Over the last {pair.long}, the organization spent at {rate}x the pace that "
            f"would use its monthly limit exactly by the end of the period {tail}",
            url(alerts.org_burn_rate),
        ),
    ]


def _spike_alert(limits: Limits, names: Names, alerts: Alerts, url: Any) -> dict[str, Any]:
    s = limits.spike
    recent, baseline = names.agent_spend_hourly, names.agent_spend_baseline
    expr = (
        f"{recent} >= {number(s.min_hourly)}\n"
        f"and on({AGENT}) ({recent} >= on({AGENT}) {baseline} * {number(s.factor)})"
    )
    query = f"{baseline}{{{AGENT}=%q}}"
    usual = (
        f'{{{{ with printf "{query}" $labels.{AGENT} | query }}}}'
        '{{ . | first | value | printf "%.2f" }}{{ else }}?{{ end }}'
    )
    return _alert(
        alerts.spend_spike,
        expr,
        s.for_,
        {SEVERITY_LABEL: "critical"},
        f"Agent {AGENT_TEXT} is spending {number(s.factor)}x its usual rate or more",
        f'Agent {AGENT_TEXT} spent at {{{{ $value | printf "%.2f" }}}} {limits.currency} '
        f"per hour over the last {s.window}, against {usual} {limits.currency} per hour on "
        f"average over its history before that (up to {s.baseline}). A loop or a retry storm "
        "spends like this.",
        url(alerts.spend_spike),
    )


def early_warning_alert_group(
    limits: Limits, runbook_base_url: str, interval: str, for_duration: str | None
) -> dict[str, Any]:
    names, alerts = Names(limits.namespace), Alerts(limits.namespace)
    anchors = alerts.anchors()

    def url(name: str) -> str:
        return f"{runbook_base_url}#{anchors[name]}"

    rules = [
        *_forecast_alerts(limits, names, alerts, url),
        *_burn_alerts(limits, names, alerts, url),
        _spike_alert(limits, names, alerts, url),
    ]
    return alert_group(
        f"{limits.namespace}-budget-early-warning-alerts", interval, rules, for_duration
    )


__all__ = ["early_warning_alert_group", "early_warning_recording_groups", "windows"]
