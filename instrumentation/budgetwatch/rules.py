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

from dataclasses import dataclass, replace
from typing import Any

import yaml

from .alert_rules import ALERTS_FILE, DEFAULT_RUNBOOK_BASE_URL, alert_groups, alert_names
from .early_warning_rules import early_warning_alert_group, early_warning_recording_groups
from .limit_rules import limit_rules
from .limits import Limits
from .promql import indent as _indent
from .spec import (
    AGENT,
    DAILY,
    DAY_SECONDS,
    MONTHLY,
    WINDOW_LABEL,
    WINDOWS,
    Counter,
    Names,
    Window,
)

# Samples arrive every 10 s by default; one minute keeps every group cheap and the blur at
# midnight (spend between the last evaluation of a day and 00:00 counts for the next day) small.
DEFAULT_EVALUATION_INTERVAL = "1m"
RECORDING_FILE = "budget-recording.yml"


@dataclass(frozen=True)
class Timing:
    """The clock the rules run on. Tests shorten the day (a short calendar) to cross window
    edges within minutes; everything else uses the defaults."""

    interval: str = "1m"  # rule evaluation interval (keep it under the 5m lookback)
    day_seconds: int = DAY_SECONDS  # length of the daily window
    # A process unseen for this long is forgotten: if it comes back, it counts from its first
    # value again (and is flagged partial). Covers a silent pipeline of up to this long.
    baseline_bound_s: int = 6 * 3600
    # After a gap in rule evaluation, state is read back from this far, at this step (points
    # read per series: span / step), and the billing period from each of the last midnights.
    recovery_span: str = "6h"
    recovery_step: str = "15m"
    long_recovery_span: str = "35d"
    long_recovery_step: str = "1d"  # at each midnight (the epoch-aligned steps of a day)


def _rule(record: str, expr: str) -> dict[str, Any]:
    return {"record": record, "expr": expr}


def _duration_seconds(text: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": DAY_SECONDS}
    if not text or text[-1] not in units or not text[:-1].isdigit():
        raise ValueError(f"evaluation interval {text!r}: expected e.g. 30s, 1m or 2m")
    return int(text[:-1]) * units[text[-1]]


def _window_label(window: Window, names: Names, t: Timing) -> str:
    """`{<label>="<index of the current window>"}` with value 1: tags an accumulator.

    The day is computed inline: the tasks group cannot read the cost group's time helpers
    (another group may not have run yet at this timestamp).
    """
    if window is DAILY:
        start = f"floor(vector(time()) / {t.day_seconds})"
    else:
        start = f"{names.window_start(window)} / {DAY_SECONDS}"
    return f'count_values("{window.label}", {start})'


def _checkpoint(series: str) -> str:
    return f"{series}_checkpoint"


def _checkpoint_rule(series: str, t: Timing) -> dict[str, Any]:
    """`series` once every recovery step (at the first evaluation of each step): sparse, so
    that reading it back over hours costs a few samples per series, not one a minute."""
    step, interval = _duration_seconds(t.recovery_step), _duration_seconds(t.interval)
    return _rule(_checkpoint(series), f"{series} and on() (vector(time()) % {step} < {interval})")


def _recovered(series: str, resumed: str, t: Timing) -> str:
    """The value `series` had at its last checkpoint before the rule evaluator stopped, if it
    just resumed (all checkpoints are written at the same evaluations: a consistent state)."""
    return f"(last_over_time({_checkpoint(series)}[{t.recovery_span}]) and on() {resumed})"


def _recovered_sparse(series: str, resumed: str, t: Timing) -> str:
    """As `_recovered`, for a series written only for a few agents (read at the same steps)."""
    return f"(last_over_time({series}[{t.recovery_span}:{t.recovery_step}]) and on() {resumed})"


def _process_rules(c: Counter, t: Timing) -> list[dict[str, Any]]:
    """Per process (agent, ..., job, instance): the increase since the previous evaluation.

    `last` carries the last value seen, for up to `Timing.baseline_bound_s` of silence, so that
    spend during a silent pipeline is counted when the data comes back, on the side of the
    edge where the first evaluation that sees it falls. Helpers that exist only now and then
    (a process seen for the first time, a silent process, a resumed evaluation) keep the
    per-evaluation work to the processes concerned.
    """
    total = f"{c.level}:sum"
    last = f"{c.level}:last"
    recovered = f"{c.level}:last_recovered"
    first = f"{c.level}:first_value"
    silent = f"{c.level}:silent_since"
    delta = f"{c.level}:increase"
    resumed = f"absent({c.heartbeat})"
    # The last value before this evaluation: the carried one (the rule below, read before it
    # runs), or after a gap in rule evaluation the checkpoint before the gap.
    prev = f"({last} or {recovered})"
    # Raw samples since the previous evaluation, plus a minute for samples that arrive late.
    first_range = f"{_duration_seconds(t.interval) + 60}s"
    return [
        # One counter per agent and process: a process' series all reset together.
        _rule(total, f"sum by ({c.by_instance}) ({c.raw})"),
        _rule(recovered, _recovered(last, resumed, t)),
        # Processes seen for the first time (or again after the bound): their first raw
        # sample, 0 for a process born now, anything else for one running before we saw it.
        _rule(
            first,
            f"sum by ({c.by_instance}) (min_over_time({c.raw}[{first_range}]))\n"
            f"unless on({c.by_instance}) {prev}",
        ),
        _rule(
            delta,
            # counter reset (same instance restarted): the new counter counts from 0
            f"({total} and on({c.by_instance}) ({total} < {prev} * (1 - 1e-9)))\n"
            f"or\nclamp_min({total} - {prev}, 0)\n"
            # first seen: counted from its first value
            f"or\n({total} - {first})",
        ),
        # Since when each silent process has been silent; one silent for longer than the
        # bound is forgotten, and counted from its first value if it ever comes back.
        _rule(
            silent,
            f"(({silent} or {prev} * 0 + time()) unless on({c.by_instance}) {total})\n"
            f"> time() - {t.baseline_bound_s}",
        ),
        _rule(last, f"{total}\nor\n({prev} and on({c.by_instance}) {silent})"),
        _checkpoint_rule(last, t),
    ]


def _first_seen_partial(c: Counter) -> str:
    """Agents with a process seen for the first time this evaluation with a running counter."""
    return f"min by ({c.by_result}) ({c.level}:first_value > 0) * 0 + time()"


def _accumulator_rule(
    names: Names, c: Counter, window: Window, long_recovery: str | None, t: Timing
) -> dict[str, Any]:
    """Spend (or count) of the current window per result: carried, plus this evaluation's."""
    acc = names.accumulator(c.acc_level, window)
    resumed = f"absent({c.heartbeat})"
    previous = f"{acc}\nor\n{_recovered(acc, resumed, t)}"
    if long_recovery is not None:
        previous += f"\nor\n{long_recovery}"
    label = _window_label(window, names, t)
    delta = (
        f"label_replace(\n"
        f"  sum by ({c.by_result}) ({c.level}:increase)\n"
        f"  * on() group_left({window.label}) {label},\n"
        f'  "part", "increase", "", ""\n)'
    )
    expr = (
        f"sum by ({c.by_result}, {window.label}) (\n"
        f"  (\n{_indent(previous, 4)}\n  ) and on({window.label}) {label}\n"
        f"  or\n{_indent(delta, 2)}\n)"
    )
    return _rule(acc, expr)


def _partial_rule(
    names: Names, c: Counter, window: Window, extra_new: str | None, t: Timing
) -> dict[str, Any]:
    """Since when the window's figure of each agent is a lower bound (absent when exact)."""
    since = names.partial_since(window)
    resumed = f"absent({c.heartbeat})"
    label = _window_label(window, names, t)
    new = _first_seen_partial(c)
    if extra_new is not None:
        new = f"{new}\nor\n{extra_new}"
    expr = (
        f"(\n  {since}\n  or\n  {_recovered_sparse(since, resumed, t)}\n)"
        f" and on({window.label}) {label}\n"
        f"or\n(\n{_indent(new, 2)}\n) * on() group_left({window.label}) {label}"
    )
    return _rule(since, expr)


def _time_rules(names: Names, reset_day: int, t: Timing) -> list[dict[str, Any]]:
    rules = [_rule(names.window_start(w), w.edge(t.day_seconds, reset_day)) for w in WINDOWS]
    rules.append(_rule(names.period_days, f"days_in_month({names.window_start(MONTHLY)})"))
    return rules


def _cost_rules(names: Names, c: Counter, t: Timing) -> list[dict[str, Any]]:
    day, period = DAILY, MONTHLY
    period_acc = names.accumulator(c.acc_level, period)
    long_recovered = names.helper(c.acc_level, f"{period.name}_recovered")
    resumed = f"absent({c.heartbeat})"
    day_end = names.day_end(c.acc_level)
    long_step = _duration_seconds(t.long_recovery_step)
    rules = _process_rules(c, t)
    rules += [
        _accumulator_rule(names, c, day, None, t),
        _checkpoint_rule(names.accumulator(c.acc_level, day), t),
        # After a gap in rule evaluation longer than the recovery span: the period as it stood
        # at the end of the last day the evaluator saw (later spend is lost; flagged partial).
        # The heartbeat's checkpoints tell whether the short recovery has anything.
        _rule(
            long_recovered,
            f"last_over_time({day_end}[{t.long_recovery_span}])\n"
            f"and on({period.label}) {_window_label(period, names, t)}\n"
            f"and on() ({resumed} unless on() "
            f"last_over_time({_checkpoint(c.heartbeat)}[{t.recovery_span}]))",
        ),
        _accumulator_rule(names, c, period, long_recovered, t),
        _checkpoint_rule(period_acc, t),
        # The period total at the last evaluation of each day.
        _rule(
            day_end,
            f"{period_acc} and on() (vector(time()) % {long_step} >= "
            f"{long_step - _duration_seconds(t.interval)})",
        ),
        *_running_total_rules(names, c, t),
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


def _running_total_rules(names: Names, c: Counter, t: Timing) -> list[dict[str, Any]]:
    """Per agent, every increase ever counted, carried like the accumulators but never reset:
    the early-warning rules read its differences over trailing windows (one sample per agent
    and window) without caring where a day or a billing period starts. After a gap in rule
    evaluation longer than the recovery span it starts again from 0 (docs/rules.md)."""
    running = names.running_total
    resumed = f"absent({c.heartbeat})"
    carried = f"{running} or {_recovered(running, resumed, t)}"
    added = f"sum by ({c.by_result}) ({c.level}:increase)"
    expr = (
        f"sum by ({c.by_result}) (\n"
        f'  label_replace({carried}, "part", "carried", "", "")\n'
        f"  or\n"
        f'  label_replace({added}, "part", "increase", "", "")\n'
        f")"
    )
    return [_rule(running, expr), _checkpoint_rule(running, t)]


def _published_cost_rules(names: Names, c: Counter) -> list[dict[str, Any]]:
    """Contract section 5's spend series (and section 8's partial flag) from the accumulators."""
    day, period = DAILY, MONTHLY
    day_acc, period_acc = (names.accumulator(c.acc_level, w) for w in (day, period))
    return [
        # Agents seen this period but idle today show an explicit 0.
        _rule(
            names.agent_to_date(day),
            f"sum without ({day.label}) ({day_acc})\n"
            f"or\nsum without ({period.label}) ({period_acc}) * 0",
        ),
        _rule(names.agent_to_date(period), f"sum without ({period.label}) ({period_acc})"),
        _rule(
            names.agent_cost_partial,
            "\nor\n".join(
                f"label_replace(\n  sum without ({w.label}) "
                f"({names.partial_since(w)}) * 0 + 1,\n"
                f'  "{WINDOW_LABEL}", "{w.name}", "", ""\n)'
                for w in WINDOWS
            ),
        ),
        *(
            _rule(names.org_to_date(w), f"sum({names.agent_to_date(w)}) or vector(0)")
            for w in WINDOWS
        ),
    ]


def _task_rules(names: Names, c: Counter, t: Timing) -> list[dict[str, Any]]:
    day = DAILY
    acc = names.accumulator(c.acc_level, day)
    return [
        *_process_rules(c, t),
        _accumulator_rule(names, c, day, None, t),
        _checkpoint_rule(acc, t),
        _rule(names.agent_tasks_day_to_date, f"sum without ({day.label}) ({acc})"),
    ]


def _heartbeat(c: Counter, t: Timing) -> list[dict[str, Any]]:
    # Last in its group: rules above read the previous evaluation's, to tell a gap. It reads a
    # series (itself) so that it fails when the stores cannot be read, as the rules above do:
    # a ruler that queries through a query layer (Thanos Rule) otherwise records a heartbeat
    # from an evaluation whose state rules failed, and the gap goes unnoticed.
    beat = f"vector(time()) and on() (absent({c.heartbeat}) or vector(1))"
    return [_rule(c.heartbeat, beat), _checkpoint_rule(c.heartbeat, t)]


def _percent_rules(names: Names) -> list[dict[str, Any]]:
    rules = []
    for window in WINDOWS:
        org_spend, agent_spend = names.org_to_date(window), names.agent_to_date(window)
        rules.append(
            _rule(names.org_percent(window), f"{org_spend} / {names.org_limit(window)} * 100")
        )
        rules.append(
            _rule(
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
        _rule(
            names.agent_rate,
            f"sum without ({period}) ({period_total} - {period_total} offset 1h) / 3600\n"
            f"or\nsum without ({period}) (rate({_checkpoint(period_total)}[1h]))",
        ),
        # Seconds until the daily limit at the last hour's rate, only if before 00:00 UTC.
        _rule(
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
        _rule(names.cost_series, f"count({names.cost_total})"),
        *_heartbeat(cost, t),
    ]
    task_rules = [*_task_rules(names, tasks, t), *_heartbeat(tasks, t)]
    return [
        {"name": f"{limits.namespace}-budget-cost", "interval": interval, "rules": cost_rules},
        {"name": f"{limits.namespace}-budget-tasks", "interval": interval, "rules": task_rules},
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
