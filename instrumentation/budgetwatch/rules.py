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

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import yaml

from .limits import Limits, Revision
from .promql import any_of, constant, number

DEFAULT_RUNBOOK_BASE_URL = "alerts/runbooks.md"
# Samples arrive every 10 s by default; one minute keeps every group cheap and the blur at
# midnight (spend between the last evaluation of a day and 00:00 counts for the next day) small.
DEFAULT_EVALUATION_INTERVAL = "1m"
RECORDING_FILE = "budget-recording.yml"
ALERTS_FILE = "budget-alerts.yml"

DAY = 86400
AGENT = "gen_ai_agent_id"


@dataclass(frozen=True)
class Timing:
    """The clock the rules run on. Tests shorten the day (a short calendar) to cross window
    edges within minutes; everything else uses the defaults."""

    interval: str = "1m"  # rule evaluation interval (keep it under the 5m lookback)
    day_seconds: int = DAY  # length of the daily window
    # A process unseen for this long is forgotten: if it comes back, it counts from its first
    # value again (and is flagged partial). Covers a silent pipeline of up to this long.
    baseline_bound_s: int = 6 * 3600
    # After a gap in rule evaluation, state is read back from this far, at this step (points
    # read per series: span / step), and the billing period from each of the last midnights.
    recovery_span: str = "6h"
    recovery_step: str = "15m"
    long_recovery_span: str = "35d"
    long_recovery_step: str = "1d"  # at each midnight (the epoch-aligned steps of a day)


Window = Literal["daily", "monthly"]
LEVELS: tuple[tuple[str, str], ...] = (
    ("warning", "warning"),
    ("critical", "critical"),
    ("exhausted", "critical"),
)


@dataclass(frozen=True)
class WindowSpec:
    """A calendar window: its name (the `window` label), the label its accumulators carry
    (the index of the current window in days since 1970) and the helper holding its start."""

    name: Window
    label: str
    start_helper: str


WINDOWS: tuple[WindowSpec, WindowSpec] = (
    WindowSpec("daily", "day", "day_start"),
    WindowSpec("monthly", "period", "period_start"),
)


@dataclass(frozen=True)
class Names:
    """Every series name the rules read or write, for one namespace."""

    ns: str

    # raw series (contract section 3)
    @property
    def cost_total(self) -> str:
        return f"{self.ns}_cost_total"

    @property
    def tasks_total(self) -> str:
        return f"{self.ns}_tasks_total"

    @property
    def task_status(self) -> str:
        return f"{self.ns}_task_status"

    # published series (contract section 5)
    @property
    def cost_day_to_date(self) -> str:
        return f"{self.ns}_cost_day_to_date"

    @property
    def cost_period_to_date(self) -> str:
        return f"{self.ns}_cost_period_to_date"

    @property
    def agent_cost_day_to_date(self) -> str:
        return f"{self.ns}_agent_cost_day_to_date"

    @property
    def agent_cost_period_to_date(self) -> str:
        return f"{self.ns}_agent_cost_period_to_date"

    def org_limit(self, window: Window) -> str:
        return f"{self.ns}_budget_{window}_limit"

    def agent_limit(self, window: Window) -> str:
        return f"{self.ns}_agent_budget_{window}_limit"

    def org_percent(self, window: Window) -> str:
        if window == "daily":
            return f"{self.ns}_budget_daily_used_percent"
        return f"{self.ns}_budget_used_percent"

    def agent_percent(self, window: Window) -> str:
        if window == "daily":
            return f"{self.ns}_agent_budget_used_percent"
        return f"{self.ns}_agent_budget_monthly_used_percent"

    @property
    def agent_tasks_day_to_date(self) -> str:
        return f"{self.ns}_agent_tasks_day_to_date"

    @property
    def limits_info(self) -> str:
        return f"{self.ns}_budget_limits_info"

    @property
    def exhaustion_seconds(self) -> str:
        return f"{self.ns}_agent_budget_daily_exhaustion_seconds"

    # helper series (level:metric:operations; not part of the contract)
    def helper(self, level_metric: str, operations: str) -> str:
        return f"{self.ns}:{level_metric}:{operations}"

    @property
    def day_start(self) -> str:
        return self.helper("time", "day_start")

    @property
    def period_start(self) -> str:
        return self.helper("time", "period_start")

    @property
    def period_days(self) -> str:
        return self.helper("time", "period_days")

    @property
    def agent_rate(self) -> str:
        return self.helper("agent_cost", "rate1h")

    @property
    def cost_series(self) -> str:
        return self.helper("cost_series", "count")

    @property
    def agent_cost_partial(self) -> str:
        return f"{self.ns}_agent_cost_partial"

    def partial_since(self, window: Window) -> str:
        """Helper: since when an agent's figure of that window is a lower bound."""
        return self.helper("agent_cost", f"{window}_partial_since")

    def accumulator(self, level: str, window: WindowSpec) -> str:
        return self.helper(level, f"{window.name}_total")

    @property
    def cost_counter(self) -> Counter:
        return Counter(
            raw=self.cost_total,
            keep=(AGENT,),
            level=f"{self.ns}:agent_instance_cost",
            acc_level="agent_cost",
            heartbeat=self.helper("budget_cost_rules", "evaluated"),
        )

    @property
    def tasks_counter(self) -> Counter:
        return Counter(
            raw=self.tasks_total,
            keep=(AGENT, self.task_status),
            level=f"{self.ns}:agent_instance_tasks",
            acc_level="agent_tasks",
            heartbeat=self.helper("budget_task_rules", "evaluated"),
        )


@dataclass(frozen=True)
class Counter:
    """A raw counter family and how its per-window figures are kept.

    `keep` are the labels a figure keeps (besides job and instance per process); `level` is
    the helper prefix (`<ns>:<level>:...`) of its per-process helpers, `acc_level` of its
    per-result accumulators.
    """

    raw: str
    keep: tuple[str, ...]
    level: str
    acc_level: str
    heartbeat: str

    @property
    def by_instance(self) -> str:
        return ", ".join((*self.keep, "job", "instance"))

    @property
    def by_result(self) -> str:
        return ", ".join(self.keep)


def _rule(record: str, expr: str) -> dict[str, Any]:
    return {"record": record, "expr": expr}


def _duration_seconds(text: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if not text or text[-1] not in units or not text[:-1].isdigit():
        raise ValueError(f"evaluation interval {text!r}: expected e.g. 30s, 1m or 2m")
    return int(text[:-1]) * units[text[-1]]


def _window_label(window: WindowSpec, names: Names, t: Timing) -> str:
    """`{<label>="<index of the current window>"}` with value 1: tags an accumulator.

    The day is computed inline: the tasks group cannot read the cost group's time helpers
    (another group may not have run yet at this timestamp).
    """
    if window.name == "daily":
        start = f"floor(vector(time()) / {t.day_seconds})"
    else:
        start = f"{names.helper('time', window.start_helper)} / {DAY}"
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
    names: Names, c: Counter, window: WindowSpec, long_recovery: str | None, t: Timing
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


def _indent(text: str, spaces: int) -> str:
    pad = " " * spaces
    return "\n".join(pad + line for line in text.splitlines())


def _partial_rule(
    names: Names, c: Counter, window: WindowSpec, extra_new: str | None, t: Timing
) -> dict[str, Any]:
    """Since when the window's figure of each agent is a lower bound (absent when exact)."""
    since = names.partial_since(window.name)
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
    day = t.day_seconds
    return [
        _rule(names.day_start, f"floor(vector(time()) / {day}) * {day}"),
        _rule(names.period_start, _period_start_expr(reset_day)),
        _rule(names.period_days, f"days_in_month({names.period_start})"),
    ]


def _cost_rules(names: Names, c: Counter, t: Timing) -> list[dict[str, Any]]:
    day, period = WINDOWS
    period_acc = names.accumulator(c.acc_level, period)
    long_recovered = names.helper(c.acc_level, f"{period.name}_recovered")
    resumed = f"absent({c.heartbeat})"
    day_end = names.helper(c.acc_level, f"{period.name}_total_day_end")
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
        _partial_rule(names, c, day, None, t),
        _partial_rule(
            names,
            c,
            period,
            f"min by ({c.by_result}) ({long_recovered}) * 0 + time()",
            t,
        ),
        # Agents seen this period but idle today show an explicit 0.
        _rule(
            names.agent_cost_day_to_date,
            f"sum without ({day.label}) ({names.accumulator(c.acc_level, day)})\n"
            f"or\nsum without ({period.label}) ({period_acc}) * 0",
        ),
        _rule(names.agent_cost_period_to_date, f"sum without ({period.label}) ({period_acc})"),
        _rule(
            names.agent_cost_partial,
            "\nor\n".join(
                f"label_replace(\n  sum without ({w.label}) "
                f"({names.partial_since(w.name)}) * 0 + 1,\n"
                f'  "window", "{w.name}", "", ""\n)'
                for w in WINDOWS
            ),
        ),
        _rule(names.cost_day_to_date, f"sum({names.agent_cost_day_to_date}) or vector(0)"),
        _rule(names.cost_period_to_date, f"sum({names.agent_cost_period_to_date}) or vector(0)"),
    ]
    return rules


def _task_rules(names: Names, c: Counter, t: Timing) -> list[dict[str, Any]]:
    day = WINDOWS[0]
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


def _period_start_expr(reset_day: int) -> str:
    day_start = "floor(vector(time()) / 86400) * 86400"
    dom = "day_of_month(vector(time()))"
    if reset_day == 1:
        return f"{day_start} - ({dom} - 1) * 86400"
    # Day R of this month when today is on or after it, else day R of last month.
    this_month = f"{day_start} - ({dom} - {reset_day}) * 86400"
    last_month = (
        f"{day_start} - ({dom} - 1) * 86400\n"
        f"  - (days_in_month({day_start} - {dom} * 86400) - {reset_day} + 1) * 86400"
    )
    return f"({this_month} and on() ({dom} >= {reset_day}))\nor\n({last_month})"


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
    if window == "monthly":
        return f"vector({number(org.monthly)})" if org.monthly is not None else None
    if org.daily is not None:
        return f"vector({number(org.daily)})"
    if org.monthly is not None:
        # Prorated over the days of the current billing period (those of its first month).
        return f"vector({number(org.monthly)}) / {names.period_days}"
    return None


def _agent_limit_term(names: Names, revision: Revision, window: Window) -> str | None:
    limits = revision.agent_limits(window)
    explicit = [
        constant(value, AGENT, agent) for agent, value in limits.items() if value is not None
    ]
    default = revision.default_limit(window)
    parts: list[str] = []
    if explicit:
        parts.append(any_of(explicit))
    if default is not None:
        seen = f"{names.agent_cost_period_to_date} * 0 + {number(default)}"
        if limits:
            # Listed agents (explicit or exempt) never fall back to the default.
            listed = any_of([constant(1, AGENT, agent) for agent in limits])
            seen = f"({seen}) unless on({AGENT}) {listed}"
        parts.append(seen)
    return " or ".join(f"({part})" for part in parts) if parts else None


def recording_groups(
    limits: Limits, interval: str = DEFAULT_EVALUATION_INTERVAL, timing: Timing | None = None
) -> list[Any]:
    t = replace(timing or Timing(), interval=interval)
    names = Names(limits.namespace)
    revisions = limits.revisions
    cost = names.cost_counter
    tasks = names.tasks_counter
    cost_rules = _time_rules(names, limits.billing.reset_day, t) + _cost_rules(names, cost, t)

    info = _over_revisions(
        revisions,
        [f'label_replace(vector(1), "revision", "{r.revision}", "", "")' for r in revisions],
    )
    assert info is not None
    cost_rules.append(_rule(names.limits_info, info))
    windows: tuple[Window, Window] = ("daily", "monthly")
    for window in windows:
        org = _over_revisions(revisions, [_org_limit_term(names, r, window) for r in revisions])
        if org is not None:
            cost_rules.append(_rule(names.org_limit(window), org))
        agent = _over_revisions(revisions, [_agent_limit_term(names, r, window) for r in revisions])
        if agent is not None:
            cost_rules.append(_rule(names.agent_limit(window), agent))
    spend = {
        "daily": (names.cost_day_to_date, names.agent_cost_day_to_date),
        "monthly": (names.cost_period_to_date, names.agent_cost_period_to_date),
    }
    for window in windows:
        org_spend, agent_spend = spend[window]
        cost_rules.append(
            _rule(names.org_percent(window), f"{org_spend} / {names.org_limit(window)} * 100")
        )
        cost_rules.append(
            _rule(
                names.agent_percent(window),
                f"{agent_spend} / on({AGENT}) {names.agent_limit(window)} * 100",
            )
        )
    period_total = names.accumulator(cost.acc_level, WINDOWS[1])
    cost_rules += [
        # The last hour's spend rate: what the period total rose by in an hour (two points per
        # agent), or for an agent (or a period) younger than that, rate() of its checkpoints.
        _rule(
            names.agent_rate,
            f"sum without (period) ({period_total} - {period_total} offset 1h) / 3600\n"
            f"or\nsum without (period) (rate({_checkpoint(period_total)}[1h]))",
        ),
        # Seconds until the daily limit at the last hour's rate, only if before 00:00 UTC.
        _rule(
            names.exhaustion_seconds,
            f"(\n  ({names.agent_limit('daily')} - on({AGENT}) "
            f"{names.agent_cost_day_to_date}) > 0\n)\n"
            f"/ on({AGENT}) ({names.agent_rate} > 0)\n"
            f"< on() group_left() ({names.day_start} + {t.day_seconds} - time())",
        ),
        _rule(names.cost_series, f"count({names.cost_total})"),
        *_heartbeat(cost, t),
    ]
    task_rules = [*_task_rules(names, tasks, t), *_heartbeat(tasks, t)]
    return [
        {"name": f"{limits.namespace}-budget-cost", "interval": interval, "rules": cost_rules},
        {"name": f"{limits.namespace}-budget-tasks", "interval": interval, "rules": task_rules},
    ]


def alert_names(limits: Limits) -> dict[str, str]:
    """alertname -> runbook anchor id, for every alert the rules define."""
    prefix = limits.alert_prefix
    out: dict[str, str] = {}
    for level, _severity in LEVELS:
        out[f"{prefix}AgentBudget{level.title()}"] = f"agent-budget-{level}"
        out[f"{prefix}Budget{level.title()}"] = f"budget-{level}"
    out[f"{prefix}AgentBudgetExhaustionForecast"] = "agent-budget-exhaustion-forecast"
    out[f"{prefix}BudgetTelemetryAbsent"] = "budget-telemetry-absent"
    return out


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


def _partial_since_agent(names: Names, window: Window) -> str:
    """`$since`: when the agent's figure of the window became a lower bound, if it is one.

    A template query per firing alert (on a series that exists for partial agents only): a
    label would change the alert's identity when the figure becomes partial."""
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


def _with_limit_label(limit_series: str) -> str:
    """`* on(agent) group_left(limit) ...`: adds the agent's limit as label `limit`."""
    return (
        f"* on({AGENT}) group_left(limit) (\n"
        f'  count_values by ({AGENT}) ("limit", {limit_series}) * 0 + 1\n)'
    )


def alert_groups(
    limits: Limits,
    runbook_base_url: str = DEFAULT_RUNBOOK_BASE_URL,
    interval: str = DEFAULT_EVALUATION_INTERVAL,
    for_duration: str | None = None,
) -> list[Any]:
    """The alerting group; `for_duration` replaces every alert's `for:` (end-to-end tests)."""
    names = Names(limits.namespace)
    anchors = alert_names(limits)
    prefix = limits.alert_prefix
    currency = limits.currency
    thresholds = limits.thresholds
    spend = {
        "daily": (names.cost_day_to_date, "today (UTC)"),
        "monthly": (names.cost_period_to_date, "this period"),
    }
    pct = '{{ $value | printf "%.1f" }}'
    agent = f"{{{{ $labels.{AGENT} }}}}"
    alerts: list[dict[str, Any]] = []
    windows: tuple[Window, Window] = ("daily", "monthly")
    for level, severity in LEVELS:
        threshold = number(getattr(thresholds, level))
        for scope in ("agent", "org"):
            alertname = f"{prefix}{'AgentBudget' if scope == 'agent' else 'Budget'}{level.title()}"
            for window in windows:
                org_spend, when = spend[window]
                labels = {"window": window, "severity": severity, "budget_level": level}
                if scope == "agent":
                    # The limit joins as a label rather than a template query per firing agent
                    # (one query per agent and evaluation would not scale to thousands).
                    expr = (
                        f"(\n  {names.agent_percent(window)} >= {threshold}\n)\n"
                        f"{_with_limit_label(names.agent_limit(window))}"
                    )
                    since = _partial_since_agent(names, window)
                    # The summary stays query-free: one query per firing alert is enough.
                    summary = f"Agent {agent} used {pct}% of its {window} budget"
                    description = (
                        f"{since}Agent {agent} has spent {_at_least}{pct}% of its {window} limit "
                        f"of {{{{ $labels.limit }}}} {currency} {when} ({level} at {threshold}%)."
                        f"{_lower_bound_note}"
                    )
                else:
                    expr = f"{names.org_percent(window)} >= {threshold}"
                    spent = _query_value(org_spend)
                    of_limit = _query_value(names.org_limit(window))
                    since = _partial_since_org(names, window)
                    summary = (
                        f"{since}The organization used {_at_least}{pct}% of its {window} budget"
                    )
                    description = (
                        f"{since}The organization has spent {_at_least}{spent} {currency} {when} "
                        f"of its {window} limit of {of_limit} {currency} ({pct}%, {level} at "
                        f"{threshold}%).{_lower_bound_note}"
                    )
                alerts.append(
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
    forecast = f"{prefix}AgentBudgetExhaustionForecast"
    alerts.append(
        {
            "alert": forecast,
            "expr": f"{names.exhaustion_seconds}\n{_with_limit_label(names.agent_limit('daily'))}",
            "for": "5m",
            "labels": {"window": "daily", "severity": "warning"},
            "annotations": {
                "summary": f"Agent {agent} will exhaust its daily budget before 00:00 UTC",
                "description": (
                    f"At the rate of the last hour, agent {agent} reaches its daily limit of "
                    f"{{{{ $labels.limit }}}} {currency} in {{{{ $value | humanizeDuration }}}}."
                ),
                "runbook_url": f"{runbook_base_url}#{anchors[forecast]}",
            },
        }
    )
    absent = f"{prefix}BudgetTelemetryAbsent"
    alerts.append(
        {
            "alert": absent,
            # Cost series existed in the last hour and none has had a sample for 5 minutes.
            "expr": (
                f"absent({names.cost_total})\nand on() (max_over_time({names.cost_series}[1h]) > 0)"
            ),
            "for": "5m",
            "labels": {"severity": "critical"},
            "annotations": {
                "summary": "Budget telemetry stopped arriving",
                "description": (
                    f"No {names.cost_total} series has had a sample for 10 minutes although "
                    "some did within the last hour: spend is not being recorded, so budgets "
                    "and alerts are blind. Check the application's OTLP export, the collector "
                    "and its remote write to Prometheus."
                ),
                "runbook_url": f"{runbook_base_url}#{anchors[absent]}",
            },
        }
    )
    if for_duration is not None:
        for alert in alerts:
            alert["for"] = for_duration
    return [{"name": f"{limits.namespace}-budget-alerts", "interval": interval, "rules": alerts}]


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
