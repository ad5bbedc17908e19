"""The state the recording rules keep between evaluations, shared by every rule family.

Per process (agent x `instance`), the value last seen is carried across a silent pipeline and
each evaluation takes the increase since; per result, accumulators labelled with the current
window add those increases up and recover from checkpoints after a gap in rule evaluation.
docs/rules.md explains the method; budgetwatch.rules (spend, tasks) and
budgetwatch.task_cost_rules (per-task cost, coverage) build on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .promql import indent
from .spec import DAILY, DAY_SECONDS, Counter, Names, Window


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


def rule(record: str, expr: str) -> dict[str, Any]:
    return {"record": record, "expr": expr}


def duration_seconds(text: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": DAY_SECONDS}
    if not text or text[-1] not in units or not text[:-1].isdigit():
        raise ValueError(f"evaluation interval {text!r}: expected e.g. 30s, 1m or 2m")
    return int(text[:-1]) * units[text[-1]]


def window_label(window: Window, names: Names, t: Timing) -> str:
    """`{<label>="<index of the current window>"}` with value 1: tags an accumulator.

    The day is computed inline: the tasks group cannot read the cost group's time helpers
    (another group may not have run yet at this timestamp).
    """
    if window is DAILY:
        start = f"floor(vector(time()) / {t.day_seconds})"
    else:
        start = f"{names.window_start(window)} / {DAY_SECONDS}"
    return f'count_values("{window.label}", {start})'


def checkpoint(series: str) -> str:
    return f"{series}_checkpoint"


def checkpoint_rule(series: str, t: Timing) -> dict[str, Any]:
    """`series` once every recovery step (at the first evaluation of each step): sparse, so
    that reading it back over hours costs a few samples per series, not one a minute."""
    step, interval = duration_seconds(t.recovery_step), duration_seconds(t.interval)
    return rule(checkpoint(series), f"{series} and on() (vector(time()) % {step} < {interval})")


def recovered(series: str, resumed: str, t: Timing) -> str:
    """The value `series` had at its last checkpoint before the rule evaluator stopped, if it
    just resumed (all checkpoints are written at the same evaluations: a consistent state)."""
    return f"(last_over_time({checkpoint(series)}[{t.recovery_span}]) and on() {resumed})"


def recovered_sparse(series: str, resumed: str, t: Timing) -> str:
    """As `recovered`, for a series written only for a few agents (read at the same steps)."""
    return f"(last_over_time({series}[{t.recovery_span}:{t.recovery_step}]) and on() {resumed})"


def process_rules(c: Counter, t: Timing) -> list[dict[str, Any]]:
    """Per process (agent, ..., job, instance): the increase since the previous evaluation.

    `last` carries the last value seen, for up to `Timing.baseline_bound_s` of silence, so that
    spend during a silent pipeline is counted when the data comes back, on the side of the
    edge where the first evaluation that sees it falls. Helpers that exist only now and then
    (a process seen for the first time, a silent process, a resumed evaluation) keep the
    per-evaluation work to the processes concerned.
    """
    total = f"{c.level}:sum"
    last = f"{c.level}:last"
    last_recovered = f"{c.level}:last_recovered"
    first = f"{c.level}:first_value"
    silent = f"{c.level}:silent_since"
    delta = f"{c.level}:increase"
    resumed = f"absent({c.heartbeat})"
    # The last value before this evaluation: the carried one (the rule below, read before it
    # runs), or after a gap in rule evaluation the checkpoint before the gap.
    prev = f"({last} or {last_recovered})"
    # Raw samples since the previous evaluation, plus a minute for samples that arrive late.
    first_range = f"{duration_seconds(t.interval) + 60}s"
    return [
        # One counter per agent and process: a process' series all reset together.
        rule(total, f"sum by ({c.by_instance}) ({c.raw})"),
        rule(last_recovered, recovered(last, resumed, t)),
        # Processes seen for the first time (or again after the bound): their first raw
        # sample, 0 for a process born now, anything else for one running before we saw it.
        rule(
            first,
            f"sum by ({c.by_instance}) (min_over_time({c.raw}[{first_range}]))\n"
            f"unless on({c.by_instance}) {prev}",
        ),
        rule(
            delta,
            # counter reset (same instance restarted): the new counter counts from 0
            f"({total} and on({c.by_instance}) ({total} < {prev} * (1 - 1e-9)))\n"
            f"or\nclamp_min({total} - {prev}, 0)\n"
            # first seen: counted from its first value
            f"or\n({total} - {first})",
        ),
        # Since when each silent process has been silent; one silent for longer than the
        # bound is forgotten, and counted from its first value if it ever comes back.
        rule(
            silent,
            f"(({silent} or {prev} * 0 + time()) unless on({c.by_instance}) {total})\n"
            f"> time() - {t.baseline_bound_s}",
        ),
        rule(last, f"{total}\nor\n({prev} and on({c.by_instance}) {silent})"),
        checkpoint_rule(last, t),
    ]


def accumulator_rule(
    names: Names, c: Counter, window: Window, long_recovery: str | None, t: Timing
) -> dict[str, Any]:
    """Spend (or count) of the current window per result: carried, plus this evaluation's."""
    acc = names.accumulator(c.acc_level, window)
    resumed = f"absent({c.heartbeat})"
    previous = f"{acc}\nor\n{recovered(acc, resumed, t)}"
    if long_recovery is not None:
        previous += f"\nor\n{long_recovery}"
    label = window_label(window, names, t)
    delta = (
        f"label_replace(\n"
        f"  sum by ({c.by_result}) ({c.level}:increase)\n"
        f"  * on() group_left({window.label}) {label},\n"
        f'  "part", "increase", "", ""\n)'
    )
    expr = (
        f"sum by ({c.by_result}, {window.label}) (\n"
        f"  (\n{indent(previous, 4)}\n  ) and on({window.label}) {label}\n"
        f"  or\n{indent(delta, 2)}\n)"
    )
    return rule(acc, expr)


def heartbeat_rules(c: Counter, t: Timing) -> list[dict[str, Any]]:
    # Last in its group: rules above read the previous evaluation's, to tell a gap. It reads a
    # series (itself) so that it fails when the stores cannot be read, as the rules above do:
    # a ruler that queries through a query layer (Thanos Rule) otherwise records a heartbeat
    # from an evaluation whose state rules failed, and the gap goes unnoticed.
    beat = f"vector(time()) and on() (absent({c.heartbeat}) or vector(1))"
    return [rule(c.heartbeat, beat), checkpoint_rule(c.heartbeat, t)]


def running_total_rules(running: str, c: Counter, t: Timing) -> list[dict[str, Any]]:
    """Per result, every increase ever counted, carried like the accumulators but never reset:
    differences of it over trailing windows (one sample per result and window) are what rose
    in those windows, wherever a day or a billing period starts. After a gap in rule
    evaluation longer than the recovery span it starts again from 0 (docs/rules.md)."""
    resumed = f"absent({c.heartbeat})"
    carried = f"{running} or {recovered(running, resumed, t)}"
    added = f"sum by ({c.by_result}) ({c.level}:increase)"
    expr = (
        f"sum by ({c.by_result}) (\n"
        f'  label_replace({carried}, "part", "carried", "", "")\n'
        f"  or\n"
        f'  label_replace({added}, "part", "increase", "", "")\n'
        f")"
    )
    return [rule(running, expr), checkpoint_rule(running, t)]
