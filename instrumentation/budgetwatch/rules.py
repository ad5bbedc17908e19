"""Prometheus recording and alerting rules generated from a limits file.

The recording rules turn the raw counters (`<ns>_cost_total`, `<ns>_tasks_total`) into
calendar-exact day-to-date and billing-period-to-date figures per agent and for the org, the
limits in force as series, budget percentages and an exhaustion forecast. docs/rules.md
explains the method, its bounds and tolerances; in short:

* Every process (`instance`) is summed over provider and model into one helper counter per
  agent and process. Each evaluation takes its increase since the value last seen (carried
  across a silent pipeline for up to `Timing.baseline_bound_s`, 6 h; a counter reset counts the new
  counter; a process seen for the first time counts from its first raw sample, which is 0
  for a process born now and anything else for one that was running before we saw it).
* Per agent, accumulators labelled with the current day and billing period add up those
  increases: the window of the evaluation that sees a rise gets it, so spend is never on
  both sides of an edge nor lost. The accumulators carry themselves from one evaluation to
  the next, and after a gap in rule evaluation recover from their own history.
* A figure that starts late (a process first seen with a running counter) is flagged in
  `<ns>_agent_cost_partial` until its window ends.
* Limits are constant series, one rule per series, each revision bounded in time by its
  `effective_from` and the next one's.

Stock PromQL only (no feature flags), so the files also load in Mimir, Thanos and
VictoriaMetrics rulers.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import yaml

from .alert_rules import ALERTS_FILE, DEFAULT_RUNBOOK_BASE_URL, alert_groups, alert_names
from .early_warning_rules import early_warning_alert_group, early_warning_recording_groups
from .limit_rules import limit_rules
from .limits import Limits
from .promql import indent as indent
from .spec import (
    AGENT,
    DAILY,
    MONTHLY,
    WINDOW_LABEL,
    WINDOWS,
    Counter,
    Names,
    Window,
)
from .task_cost_rules import task_cost_alert_group, task_cost_recording_groups
from .window_state import (
    Timing,
    accumulator_rule,
    checkpoint,
    checkpoint_rule,
    duration_seconds,
    heartbeat_rules,
    process_rules,
    recovered_sparse,
    rule,
    running_total_rules,
    window_label,
)

# Samples arrive every 10 s by default; one minute keeps every group cheap and the blur at
# midnight (spend between the last evaluation of a day and 00:00 counts for the next day) small.
DEFAULT_EVALUATION_INTERVAL = "1m"
RECORDING_FILE = "budget-recording.yml"


def _first_seen_partial(c: Counter) -> str:
    """Agents with a process seen for the first time this evaluation with a running counter."""
    return f"min by ({c.by_result}) ({c.level}:first_value > 0) * 0 + time()"


def _partial_rule(
    names: Names, c: Counter, window: Window, extra_new: str | None, t: Timing
) -> dict[str, Any]:
    """Since when the window's figure of each agent is a lower bound (absent when exact)."""
    since = names.partial_since(window)
    resumed = f"absent({c.heartbeat})"
    label = window_label(window, names, t)
    new = _first_seen_partial(c)
    if extra_new is not None:
        new = f"{new}\nor\n{extra_new}"
    expr = (
        f"(\n  {since}\n  or\n  {recovered_sparse(since, resumed, t)}\n)"
        f" and on({window.label}) {label}\n"
        f"or\n(\n{indent(new, 2)}\n) * on() group_left({window.label}) {label}"
    )
    return rule(since, expr)


def _time_rules(names: Names, reset_day: int, t: Timing) -> list[dict[str, Any]]:
    rules = [rule(names.window_start(w), w.edge(t.day_seconds, reset_day)) for w in WINDOWS]
    rules.append(rule(names.period_days, f"days_in_month({names.window_start(MONTHLY)})"))
    return rules


def _cost_rules(names: Names, c: Counter, t: Timing) -> list[dict[str, Any]]:
    day, period = DAILY, MONTHLY
    period_acc = names.accumulator(c.acc_level, period)
    long_recovered = names.helper(c.acc_level, f"{period.name}_recovered")
    resumed = f"absent({c.heartbeat})"
    day_end = names.day_end(c.acc_level)
    long_step = duration_seconds(t.long_recovery_step)
    rules = process_rules(c, t)
    rules += [
        accumulator_rule(names, c, day, None, t),
        checkpoint_rule(names.accumulator(c.acc_level, day), t),
        # After a gap in rule evaluation longer than the recovery span: the period as it stood
        # at the end of the last day the evaluator saw (later spend is lost; flagged partial).
        # The heartbeat's checkpoints tell whether the short recovery has anything.
        rule(
            long_recovered,
            f"last_over_time({day_end}[{t.long_recovery_span}])\n"
            f"and on({period.label}) {window_label(period, names, t)}\n"
            f"and on() ({resumed} unless on() "
            f"last_over_time({checkpoint(c.heartbeat)}[{t.recovery_span}]))",
        ),
        accumulator_rule(names, c, period, long_recovered, t),
        checkpoint_rule(period_acc, t),
        # The period total at the last evaluation of each day.
        rule(
            day_end,
            f"{period_acc} and on() (vector(time()) % {long_step} >= "
            f"{long_step - duration_seconds(t.interval)})",
        ),
        *running_total_rules(names.running_total, c, t),
        _partial_rule(names, c, day, None, t),
        _partial_rule(
            names,
            c,
            period,
            f"min by ({c.by_result}) ({long_recovered}) * 0 + time()",
            t,
        ),
    ]
    return rules + _published_cost_rules(names, c)


def _published_cost_rules(names: Names, c: Counter) -> list[dict[str, Any]]:
    """Contract section 5's spend series (and section 8's partial flag) from the accumulators."""
    day, period = DAILY, MONTHLY
    day_acc, period_acc = (names.accumulator(c.acc_level, w) for w in (day, period))
    return [
        # Agents seen this period but idle today show an explicit 0.
        rule(
            names.agent_to_date(day),
            f"sum without ({day.label}) ({day_acc})\n"
            f"or\nsum without ({period.label}) ({period_acc}) * 0",
        ),
        rule(names.agent_to_date(period), f"sum without ({period.label}) ({period_acc})"),
        rule(
            names.agent_cost_partial,
            "\nor\n".join(
                f"label_replace(\n  sum without ({w.label}) "
                f"({names.partial_since(w)}) * 0 + 1,\n"
                f'  "{WINDOW_LABEL}", "{w.name}", "", ""\n)'
                for w in WINDOWS
            ),
        ),
        *(
            rule(names.org_to_date(w), f"sum({names.agent_to_date(w)}) or vector(0)")
            for w in WINDOWS
        ),
    ]


def _task_rules(names: Names, c: Counter, t: Timing) -> list[dict[str, Any]]:
    day = DAILY
    acc = names.accumulator(c.acc_level, day)
    return [
        *process_rules(c, t),
        accumulator_rule(names, c, day, None, t),
        checkpoint_rule(acc, t),
        rule(names.agent_tasks_day_to_date, f"sum without ({day.label}) ({acc})"),
    ]


def _percent_rules(names: Names) -> list[dict[str, Any]]:
    rules = []
    for window in WINDOWS:
        org_spend, agent_spend = names.org_to_date(window), names.agent_to_date(window)
        rules.append(
            rule(names.org_percent(window), f"{org_spend} / {names.org_limit(window)} * 100")
        )
        rules.append(
            rule(
                names.agent_percent(window),
                f"{agent_spend} / on({AGENT}) {names.agent_limit(window)} * 100",
            )
        )
    return rules


def _forecast_rules(names: Names, cost: Counter, t: Timing) -> list[dict[str, Any]]:
    period_total = names.accumulator(cost.acc_level, MONTHLY)
    period = MONTHLY.label
    return [
        # The last hour's spend rate: what the period total rose by in an hour (two points per
        # agent), or for an agent (or a period) younger than that, rate() of its checkpoints.
        rule(
            names.agent_rate,
            f"sum without ({period}) ({period_total} - {period_total} offset 1h) / 3600\n"
            f"or\nsum without ({period}) (rate({checkpoint(period_total)}[1h]))",
        ),
        # Seconds until the daily limit at the last hour's rate, only if before 00:00 UTC.
        rule(
            names.exhaustion_seconds,
            f"(\n  ({names.agent_limit(DAILY)} - on({AGENT}) "
            f"{names.agent_to_date(DAILY)}) > 0\n)\n"
            f"/ on({AGENT}) ({names.agent_rate} > 0)\n"
            f"< on() group_left() ({names.window_start(DAILY)} + {t.day_seconds} - time())",
        ),
    ]


def recording_groups(
    limits: Limits, interval: str = DEFAULT_EVALUATION_INTERVAL, timing: Timing | None = None
) -> list[Any]:
    t = replace(timing or Timing(), interval=interval)
    names = Names(limits.namespace)
    cost = names.cost_counter
    tasks = names.tasks_counter
    cost_rules = [
        *_time_rules(names, limits.billing.reset_day, t),
        *_cost_rules(names, cost, t),
        *limit_rules(names, limits.revisions),
        *_percent_rules(names),
        *_forecast_rules(names, cost, t),
        rule(names.cost_series, f"count({names.cost_total})"),
        *heartbeat_rules(cost, t),
    ]
    task_rules = [*_task_rules(names, tasks, t), *heartbeat_rules(tasks, t)]
    return [
        {"name": f"{limits.namespace}-budget-cost", "interval": interval, "rules": cost_rules},
        {"name": f"{limits.namespace}-budget-tasks", "interval": interval, "rules": task_rules},
        *task_cost_recording_groups(limits, interval, t),
        *early_warning_recording_groups(limits, interval),
    ]


class _Dumper(yaml.SafeDumper):
    pass


def _str_presenter(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # Multi-line expressions as literal blocks; PyYAML falls back to quoting when it must.
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_presenter)


def _dump(groups: list[Any], source: str) -> str:
    header = (
        f"# generated by budgetwatch from {source}, do not edit\n"
        f"# (edit {source} and run `budgetwatch render`; series reference: docs/rules.md)\n"
    )
    body = yaml.dump(
        {"groups": groups},
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=100,
    )
    return header + body


def render_rule_files(
    limits: Limits,
    source: str,
    *,
    runbook_base_url: str = DEFAULT_RUNBOOK_BASE_URL,
    evaluation_interval: str = DEFAULT_EVALUATION_INTERVAL,
    for_duration: str | None = None,
    timing: Timing | None = None,
) -> dict[str, str]:
    """File name -> Prometheus rule file text, each with the "generated ... do not edit" header.

    `evaluation_interval` goes on every group (keep it under 5m: the rules rely on the default
    5m lookback); `for_duration` overrides the alerts' `for:` and `timing` the clock (a short
    calendar), for tests that cannot wait.
    """
    alerts = alert_groups(limits, runbook_base_url, evaluation_interval, for_duration)
    alerts.append(
        early_warning_alert_group(limits, runbook_base_url, evaluation_interval, for_duration)
    )
    alerts.append(
        task_cost_alert_group(limits, runbook_base_url, evaluation_interval, for_duration)
    )
    recording = recording_groups(limits, evaluation_interval, timing)
    return {
        RECORDING_FILE: _dump(recording, source),
        ALERTS_FILE: _dump(alerts, source),
    }


__all__ = [
    "ALERTS_FILE",
    "DEFAULT_EVALUATION_INTERVAL",
    "DEFAULT_RUNBOOK_BASE_URL",
    "RECORDING_FILE",
    "Names",
    "Timing",
    "alert_groups",
    "alert_names",
    "recording_groups",
    "render_rule_files",
]
