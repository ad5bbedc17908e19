"""Rules for the cost of tasks against a per-task limit, and for budget coverage.

Per-task cost arrives as a native histogram (`<ns>_task_cost`, one observation per finished
task). Each evaluation takes what each process' histogram gained since the histogram last seen
(carried through a silent pipeline like the counters, budgetwatch.window_state) and counts the
tasks in that gain above the agent's per-task limit in force now: a limit revised mid-day
judges the tasks finished after it, and none before. histogram_fraction takes a number, not a
series, so there is one term per distinct per-task limit of the limits file (known when the
rules are rendered).

Coverage is priced calls / (priced + unpriced) calls over the last hour, per agent and for the
organization, from the same carried per-process increases (failed calls are on neither side).
docs/rules.md describes both and their tolerances.
"""

from __future__ import annotations

from typing import Any

from .alert_rules import AGENT_TEXT, alert_group, with_limit_label
from .limits import Limits
from .promql import indent, number
from .spec import (
    AGENT,
    COVERAGE_WINDOW,
    DAILY,
    MODEL,
    MONTHLY,
    PRICED_OUTCOME,
    PROVIDER,
    SEVERITY_LABEL,
    TASK_ALERT_WINDOW,
    UNPRICED_OUTCOME,
    Alerts,
    Counter,
    Names,
)
from .window_state import (
    Timing,
    accumulator_rule,
    checkpoint_rule,
    heartbeat_rules,
    process_rules,
    recovered,
    rule,
    running_total_rules,
)


def _trailing(running: str, window: str) -> str:
    """What a running total rose by over the trailing window (all of it when younger)."""
    return f"{running} - {running} offset {window}\nor\n{running}"


def _histogram_process_rules(names: Names, h: Counter, t: Timing) -> list[dict[str, Any]]:
    """Per process (agent, job, instance): the histogram of the tasks finished since the
    previous evaluation (`<level>:delta`), as process_rules does for counters.

    A histogram has no "first value 0" to tell a process born now from one running before we
    saw it; the cost rules know: a process whose histogram is new is counted whole when the
    cost rules saw it before this evaluation and its agent's figures are exact, taken as the
    baseline when they are partial (counted from now), and left for the next evaluation while
    the cost rules have not seen it yet.
    """
    total = f"{h.level}:sum"
    last = f"{h.level}:last"
    last_recovered = f"{h.level}:last_recovered"
    silent = f"{h.level}:silent_since"
    delta = f"{h.level}:delta"
    by = h.by_instance
    prev = f"({last} or {last_recovered})"
    cost_level = names.cost_counter.level
    # Read one evaluation back: the cost group may run after this one at the same instant.
    known = f"count by ({by}) ({cost_level}:last offset {t.interval})"
    partial = f"count by ({AGENT}) ({names.partial_since(MONTHLY)} offset {t.interval})"
    return [
        rule(total, f"sum by ({by}) ({h.raw})"),
        rule(last_recovered, recovered(last, f"absent({h.heartbeat})", t)),
        rule(
            delta,
            # counter reset (same instance restarted): the new histogram counts whole
            f"({total} and on({by}) (histogram_count({total}) < histogram_count({prev})))\n"
            f"or\n"
            f"(({total} - {prev}) and on({by}) "
            f"(histogram_count({total}) > histogram_count({prev})))\n"
            f"or\n"
            # seen for the first time, by a process born while we watched
            f"(({total} unless on({by}) {prev}) and on({by}) ({known} unless on({AGENT}) "
            f"{partial}))",
        ),
        rule(
            silent,
            f"(({silent} or histogram_count({prev}) * 0 + time()) unless on({by}) {total})\n"
            f"> time() - {t.baseline_bound_s}",
        ),
        rule(
            last,
            f"({total} and on({by}) ({prev} or {known}))\nor\n({prev} and on({by}) {silent})",
        ),
        checkpoint_rule(last, t),
    ]


def _over_limit_increase(names: Names, h: Counter, values: tuple[float, ...]) -> str:
    """Per agent: tasks in this evaluation's histogram gain above the agent's per-task limit."""
    delta = f"{h.level}:delta"
    limit = names.agent_per_task_limit
    terms = [
        f"histogram_count({delta}) * histogram_fraction({number(value)}, +Inf, {delta})\n"
        f"and on({AGENT}) ({limit} == {number(value)})"
        for value in values
    ]
    body = "\nor\n".join(f"(\n{indent(term, 2)}\n)" for term in terms)
    return f"sum by ({AGENT}) (\n{indent(body, 2)}\n)"


def _task_cost_rules(names: Names, limits: Limits, t: Timing) -> list[dict[str, Any]]:
    """Over-limit tasks per agent. Without any per-task limit in the limits file nothing reads
    the histogram; the published series and the alert then stay empty."""
    h = names.task_cost_histogram
    acc = names.accumulator(h.acc_level, DAILY)
    values = limits.per_task_values()
    counting = (
        [
            *_histogram_process_rules(names, h, t),
            rule(f"{h.level}:increase", _over_limit_increase(names, h, values)),
        ]
        if values
        else []
    )
    return [
        *counting,
        accumulator_rule(names, h, DAILY, None, t),
        checkpoint_rule(acc, t),
        *running_total_rules(names.tasks_over_limit_running_total, h, t),
        # Agents with a per-task limit and no over-limit task today show an explicit 0.
        rule(
            names.agent_tasks_over_limit_day_to_date,
            f"sum without ({DAILY.label}) ({acc})\nor\n{names.agent_per_task_limit} * 0",
        ),
    ]


def _coverage_rules(names: Names, t: Timing) -> list[dict[str, Any]]:
    calls = names.calls_counter
    running = names.helper(calls.acc_level, "running_total")
    hourly = names.helper(calls.acc_level, f"increase{COVERAGE_WINDOW}")
    priced = f'{hourly}{{{names.call_outcome}="{PRICED_OUTCOME}"}}'

    def ratio(by: str) -> str:
        agg = f"sum by ({by})" if by else "sum"
        return f"(\n  {agg} ({priced})\n  or\n  {agg} ({hourly}) * 0\n)\n/ ({agg} ({hourly}) > 0)"

    return [
        *process_rules(calls, t),
        *running_total_rules(running, calls, t),
        rule(hourly, _trailing(running, COVERAGE_WINDOW)),
        rule(names.agent_coverage, ratio(AGENT)),
        rule(names.org_coverage, ratio("")),
    ]


def task_cost_recording_groups(limits: Limits, interval: str, t: Timing) -> list[dict[str, Any]]:
    """Two groups, each with its own heartbeat: Prometheus evaluates groups concurrently, and
    at 10,000 agents each takes seconds (docs/scaling.md)."""
    names = Names(limits.namespace)
    task_cost = [
        *_task_cost_rules(names, limits, t),
        *heartbeat_rules(names.task_cost_histogram, t),
    ]
    coverage = [*_coverage_rules(names, t), *heartbeat_rules(names.calls_counter, t)]
    return [
        {"name": f"{limits.namespace}-budget-task-cost", "interval": interval, "rules": task_cost},
        {"name": f"{limits.namespace}-budget-coverage", "interval": interval, "rules": coverage},
    ]


def _unpriced_models(names: Names) -> str:
    """Template text listing the agent's unpriced provider/models of the last hour (a query
    run per firing alert only)."""
    query = (
        f"sum by ({PROVIDER}, {MODEL}) (increase({names.calls_total}{{{AGENT}=%q, "
        f"{names.call_outcome}='{UNPRICED_OUTCOME}'}}[{COVERAGE_WINDOW}])) > 0"
    )
    return (
        f'{{{{ range $i, $s := printf "{query}" $labels.{AGENT} | query }}}}'
        f"{{{{ if $i }}}}, {{{{ end }}}}{{{{ $s.Labels.{PROVIDER} }}}}/{{{{ $s.Labels.{MODEL} }}}}"
        "{{ end }}"
    )


def task_cost_alert_group(
    limits: Limits, runbook_base_url: str, interval: str, for_duration: str | None
) -> dict[str, Any]:
    names, alerts = Names(limits.namespace), Alerts(limits.namespace)
    anchors = alerts.anchors()
    currency = limits.currency
    max_over = number(limits.task_limit.max_over_limit_per_hour)
    over = _trailing(names.tasks_over_limit_running_total, TASK_ALERT_WINDOW)
    task_alert = {
        "alert": alerts.task_over_budget,
        "expr": with_limit_label(f"({over}) > {max_over}", names.agent_per_task_limit),
        "for": "0m",
        "labels": {SEVERITY_LABEL: "warning"},
        "annotations": {
            "summary": f"Agent {AGENT_TEXT}'s tasks cost more than its per-task limit",
            "description": (
                f'Agent {AGENT_TEXT} finished {{{{ $value | printf "%.0f" }}}} '
                f"task(s) in the last {TASK_ALERT_WINDOW} whose cost exceeded its "
                f"per-task limit of {{{{ $labels.limit }}}} {currency} (more than "
                f"{max_over} allowed)."
            ),
            "runbook_url": f"{runbook_base_url}#{anchors[alerts.task_over_budget]}",
        },
    }
    min_ratio = number(limits.coverage.min_ratio)
    coverage_alert = {
        "alert": alerts.coverage_low,
        "expr": f"{names.agent_coverage} < {min_ratio}",
        "for": limits.coverage.for_,
        "labels": {SEVERITY_LABEL: "warning"},
        "annotations": {
            "summary": f"Agent {AGENT_TEXT}'s spend is not fully metered",
            "description": (
                f"Only {{{{ $value | humanizePercentage }}}} of agent {AGENT_TEXT}'s calls "
                f"in the last {COVERAGE_WINDOW} had a known price (at least "
                f"{number(limits.coverage.min_percent)}% expected): its spend and budget "
                f"figures leave the others out. Unpriced: {_unpriced_models(names)}."
            ),
            "runbook_url": f"{runbook_base_url}#{anchors[alerts.coverage_low]}",
        },
    }
    return alert_group(
        f"{limits.namespace}-budget-task-cost-alerts",
        interval,
        [task_alert, coverage_alert],
        for_duration,
    )


__all__ = ["task_cost_alert_group", "task_cost_recording_groups"]
