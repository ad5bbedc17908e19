"""Prometheus recording and alerting rules generated from a limits file.

The recording rules turn the raw counters (`<ns>_cost_total`, `<ns>_tasks_total`) into
calendar-exact day-to-date and billing-period-to-date figures per agent and for the org, the
limits in force as series, budget percentages and an exhaustion forecast. docs/rules.md
explains every series and the accuracy of each; the short version of the method:

* Every process (`instance`) is summed over provider and model into one helper counter per
  agent and process, recorded at each evaluation.
* Day-to-date of one process = its last value today - its last value before 00:00 UTC (0 when
  born today) + the values it had before each counter reset today. "Last value today" reads
  the helper through subqueries masked to today's steps, so processes that stopped
  earlier today still count (a `[2h:5m]` helper read at hourly steps over the day: 48 points
  per process, not 288); resets are caught between two evaluations and remembered in a sparse
  helper labelled with the day.
* Period-to-date = the day-to-date recorded just before each midnight of the billing period
  (a `[31d:1d]` subquery: one point per agent and day) + today's day-to-date.
* Limits are constant series, one rule per series, each revision bounded in time by its
  `effective_from` and the next one's.

Stock PromQL only (no feature flags), so the files also load in Mimir, Thanos and
VictoriaMetrics rulers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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
# Step of the "last value" subquery: with Prometheus' default 5 m lookback, a 5 m step sees
# every sample of a series recorded at least every 5 minutes.
LAST_TODAY_STEP = "5m"

Window = Literal["daily", "monthly"]
LEVELS: tuple[tuple[str, str], ...] = (
    ("warning", "warning"),
    ("critical", "critical"),
    ("exhausted", "critical"),
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
    def closed_days(self) -> str:
        return self.helper("agent_cost", "period_closed_days")

    @property
    def agent_rate(self) -> str:
        return self.helper("agent_cost", "rate1h")

    @property
    def cost_series(self) -> str:
        return self.helper("cost_series", "count")


@dataclass(frozen=True)
class Counter:
    """A raw counter and the labels its day-to-date keeps (besides job and instance)."""

    raw: str
    keep: tuple[str, ...]
    # helper prefix: `<ns>:<level>:...`
    level: str
    day_start_helper: str

    @property
    def by_instance(self) -> str:
        return ", ".join((*self.keep, "job", "instance"))

    @property
    def by_result(self) -> str:
        return ", ".join(self.keep)


def _rule(record: str, expr: str) -> dict[str, Any]:
    return {"record": record, "expr": expr}


def _now_day_label() -> str:
    # {day="<days since 1970>"}: count_values turns the value into a label.
    return 'count_values("day", floor(vector(time()) / 86400))'


def _instance_day_to_date_rules(names: Names, c: Counter) -> tuple[list[dict[str, Any]], str]:
    """Helper rules for one counter, and the per-process day-to-date expression over them."""
    total = names.helper(c.level, "sum")
    base = names.helper(c.level, "day_start")
    carry = names.helper(c.level, "reset_carry")
    recent = names.helper(c.level, "last_2h")
    last = names.helper(c.level, "last_today")
    today = f"vector(time()) >= {c.day_start_helper} @ end()"
    rules = [
        # One counter per agent and process: a process' series all reset together.
        _rule(total, f"sum by ({c.by_instance}) ({c.raw})"),
        # Value just before 00:00 UTC: the helper's last sample of yesterday (the same figure
        # yesterday's last evaluation used, so days tile exactly), else the raw series' (first
        # day after deploying the rules, or a gap in rule evaluation at midnight).
        _rule(
            base,
            f"last_over_time(({total} offset 1ms)[1d:1d])\n"
            f"or\nsum by ({c.by_instance}) (last_over_time(({c.raw} offset 1ms)[1d:1d]))",
        ),
        # A counter reset (same instance restarted): remember the value it had before, once,
        # labelled with the day. Sparse: one sample per reset. The 1e-9 slack ignores float
        # rounding of the sum when a new provider/model series joins it.
        _rule(
            carry,
            f"(({total} offset 1ms) > ({total} + 1e-9 * ({total} offset 1ms)))\n"
            f"* on() group_left(day) {_now_day_label()}",
        ),
        # Last value today within the last 2 hours (a 5m step sees every sample with the
        # default 5m lookback). Kept 2 h so that the hourly reads below overlap.
        _rule(
            recent,
            f"last_over_time(\n  ({total} and on() ({today}))[2h:{LAST_TODAY_STEP}]\n)",
        ),
        # Last value today of every process, alive (now) or stopped earlier today (the 2 h
        # helper read once an hour): 24 + 24 points per process instead of 288.
        _rule(
            last,
            f"{total}\nor\n{recent}\nor\nlast_over_time(\n"
            f"  ({recent} and on() (vector(time()) > {c.day_start_helper} @ end()))[1d:1h]\n)",
        ),
    ]
    carried_today = (
        f"sum without (day) (\n    sum_over_time({carry}[1d])\n"
        f"    and on(day) {_now_day_label()}\n  )"
    )
    per_instance = (
        f"clamp_min(\n  {last} - ({base} or {last} * 0)\n"
        f"  + ({carried_today} or {last} * 0),\n  0\n)"
    )
    return rules, per_instance


def _day_start_rule(record: str) -> dict[str, Any]:
    return _rule(record, "floor(vector(time()) / 86400) * 86400")


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


def recording_groups(limits: Limits, interval: str = DEFAULT_EVALUATION_INTERVAL) -> list[Any]:
    names = Names(limits.namespace)
    revisions = limits.revisions
    cost = Counter(
        raw=names.cost_total,
        keep=(AGENT,),
        level="agent_instance_cost",
        day_start_helper=names.day_start,
    )
    task_day_start = names.helper("task_time", "day_start")
    tasks = Counter(
        raw=names.tasks_total,
        keep=(AGENT, names.task_status),
        level="agent_instance_tasks",
        day_start_helper=task_day_start,
    )

    cost_rules: list[dict[str, Any]] = [
        _day_start_rule(names.day_start),
        _rule(names.period_start, _period_start_expr(limits.billing.reset_day)),
        _rule(names.period_days, f"days_in_month({names.period_start})"),
    ]
    helpers, per_instance = _instance_day_to_date_rules(names, cost)
    cost_rules += helpers
    cost_rules += [
        # Each closed day of the period: the day-to-date recorded just before its midnight.
        _rule(
            names.closed_days,
            f"sum_over_time(\n  (\n    ({names.agent_cost_day_to_date} offset 1ms)\n"
            f"    and on() (vector(time()) > {names.period_start} @ end())\n  )[31d:1d]\n)",
        ),
        # Agents seen this period but idle today get an explicit 0.
        _rule(
            names.agent_cost_day_to_date,
            f"sum by ({AGENT}) (\n{per_instance}\n)\nor\n{names.closed_days} * 0",
        ),
        _rule(
            names.agent_cost_period_to_date,
            f"{names.closed_days} + {names.agent_cost_day_to_date}\n"
            f"or\n{names.agent_cost_day_to_date}",
        ),
        _rule(names.cost_day_to_date, f"sum({names.agent_cost_day_to_date}) or vector(0)"),
        _rule(names.cost_period_to_date, f"sum({names.agent_cost_period_to_date}) or vector(0)"),
    ]

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
    total = names.helper(cost.level, "sum")
    cost_rules += [
        _rule(names.agent_rate, f"sum by ({AGENT}) (rate({total}[1h]))"),
        # Seconds until the daily limit at the last hour's rate, only if before 00:00 UTC.
        _rule(
            names.exhaustion_seconds,
            f"(\n  ({names.agent_limit('daily')} - on({AGENT}) "
            f"{names.agent_cost_day_to_date}) > 0\n)\n"
            f"/ on({AGENT}) ({names.agent_rate} > 0)\n"
            f"< on() group_left() ({names.day_start} + 86400 - time())",
        ),
        _rule(names.cost_series, f"count({names.cost_total})"),
    ]

    task_rules: list[dict[str, Any]] = [_day_start_rule(task_day_start)]
    helpers, per_instance = _instance_day_to_date_rules(names, tasks)
    task_rules += helpers
    task_rules.append(
        _rule(names.agent_tasks_day_to_date, f"sum by ({tasks.by_result}) (\n{per_instance}\n)")
    )
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
                    summary = f"Agent {agent} used {pct}% of its {window} budget"
                    description = (
                        f"Agent {agent} has spent {pct}% of its {window} limit of "
                        f"{{{{ $labels.limit }}}} {currency} {when} ({level} at {threshold}%)."
                    )
                else:
                    expr = f"{names.org_percent(window)} >= {threshold}"
                    spent = _query_value(org_spend)
                    of_limit = _query_value(names.org_limit(window))
                    summary = f"The organization used {pct}% of its {window} budget"
                    description = (
                        f"The organization has spent {spent} {currency} {when} of its {window} "
                        f"limit of {of_limit} {currency} ({pct}%, {level} at {threshold}%)."
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
) -> dict[str, str]:
    """File name -> Prometheus rule file text, each with the "generated ... do not edit" header.

    `evaluation_interval` goes on every group (keep it under 5m: the rules rely on the default
    5m lookback); `for_duration` overrides the alerts' `for:` (for tests that cannot wait).
    """
    alerts = alert_groups(limits, runbook_base_url, evaluation_interval, for_duration)
    return {
        RECORDING_FILE: _dump(recording_groups(limits, evaluation_interval), source),
        ALERTS_FILE: _dump(alerts, source),
    }


__all__ = [
    "ALERTS_FILE",
    "DEFAULT_EVALUATION_INTERVAL",
    "DEFAULT_RUNBOOK_BASE_URL",
    "RECORDING_FILE",
    "Names",
    "alert_groups",
    "alert_names",
    "recording_groups",
    "render_rule_files",
]
