"""Grafana dashboards from the limits file: budget overview, agent detail, pipeline health.

Built with Grafana's foundation SDK, so every field is one Grafana's own schema knows. Panels
query the series the recording rules publish (contract section 5), so a dashboard and an alert
always show the same number; raw series appear only where no recorded one exists (cost by
provider and model, tokens, calls, the pipeline's own health). `SERIES` lists every series a
panel may use and where it comes from; rendering refuses a query that names any other.

Imported only by the CLI's `render`: `import budgetwatch` never pulls in the SDK.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from grafana_foundation_sdk.builders import bargauge as bargauge_builder
from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard as dash_builder
from grafana_foundation_sdk.builders import gauge as gauge_builder
from grafana_foundation_sdk.builders import prometheus as prom_builder
from grafana_foundation_sdk.builders import stat as stat_builder
from grafana_foundation_sdk.builders import table as table_builder
from grafana_foundation_sdk.builders import timeseries as timeseries_builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_model
from grafana_foundation_sdk.models import dashboard as dash_model
from grafana_foundation_sdk.models import prometheus as prom_model

from .limits import Limits

DATASOURCE_VARIABLE = "datasource"
DASHBOARD_TAG = "budgetwatch"
# Grafana's built-in currency units (grafana-foundation-sdk `units`); others get a suffix.
GRAFANA_CURRENCIES = frozenset(
    {"USD", "GBP", "EUR", "JPY", "RUB", "UAH", "BRL", "DKK", "ISK", "NOK", "SEK", "CZK", "CHF",
     "PLN", "BTC", "ZAR", "INR", "KRW"}
)  # fmt: skip

# Every series a panel may query, `{ns}` standing for the namespace, and what produces it.
SERIES: Mapping[str, str] = {
    # Recording rules (contract section 5).
    "{ns}_cost_day_to_date": "rules",
    "{ns}_cost_period_to_date": "rules",
    "{ns}_agent_cost_day_to_date": "rules",
    "{ns}_agent_cost_period_to_date": "rules",
    "{ns}_budget_daily_limit": "rules",
    "{ns}_budget_monthly_limit": "rules",
    "{ns}_agent_budget_daily_limit": "rules",
    "{ns}_agent_budget_monthly_limit": "rules",
    "{ns}_budget_daily_used_percent": "rules",
    "{ns}_budget_used_percent": "rules",
    "{ns}_agent_budget_used_percent": "rules",
    "{ns}_agent_budget_monthly_used_percent": "rules",
    "{ns}_agent_tasks_day_to_date": "rules",
    "{ns}_budget_limits_info": "rules",
    "{ns}_agent_cost_partial": "rules, while a figure is a lower bound only",
    # Alert rules: Prometheus's own series of pending and firing alerts.
    "ALERTS": "rules",
    # Instrumentation (contract section 3, interface 1).
    "{ns}_cost_total": "instrumentation",
    "{ns}_tokens_total": "instrumentation",
    "{ns}_calls_total": "instrumentation",
    "{ns}_telemetry_dropped_total": "instrumentation, after a dropped event only",
    # The collector's own telemetry, scraped by Prometheus (job otelcol). Our collector
    # (v0.165) exposes its counters without a `_total` suffix: these are the names it serves.
    "otelcol_receiver_accepted_metric_points": "collector",
    "otelcol_receiver_refused_metric_points": "collector",
    "otelcol_exporter_sent_metric_points": "collector",
    "otelcol_exporter_send_failed_metric_points": "collector, after a failed send only",
    "otelcol_exporter_queue_size": "collector",
    "otelcol_exporter_queue_capacity": "collector",
    # Prometheus's own telemetry (job prometheus).
    "prometheus_rule_evaluation_duration_seconds": "prometheus",
    "prometheus_rule_evaluation_failures_total": "prometheus",
}

# PromQL words that look like series names but are not.
_PROMQL_WORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
     "bool", "offset", "start", "end", "inf", "nan", "atan2"}
)  # fmt: skip
_STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_BRACES_RE = re.compile(r"\{[^{}]*\}|\[[^\[\]]*\]")
_GROUPING_RE = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_VARIABLE_RE = re.compile(r"\$\{[^}]*\}|\$[a-zA-Z_]\w*")  # not $1: a regex group
_NAME_RE = re.compile(r"(?<![\w:.])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()")


def series_used(expr: str) -> set[str]:
    """Names of the series a PromQL expression selects (functions, labels, keywords excluded)."""
    text = _VARIABLE_RE.sub(" ", _STRING_RE.sub('""', expr))
    text = _GROUPING_RE.sub(" ", text)
    while True:  # nested label matchers and ranges, innermost first
        stripped = _BRACES_RE.sub(" ", text)
        if stripped == text:
            break
        text = stripped
    return {name for name in _NAME_RE.findall(text) if name.lower() not in _PROMQL_WORDS}


def known_series(namespace: str) -> dict[str, str]:
    """SERIES with the namespace filled in: series name -> what produces it."""
    return {name.format(ns=namespace): origin for name, origin in SERIES.items()}


def currency_unit(currency: str) -> str:
    """Grafana unit for money: its own currency unit when it has one, else a suffix."""
    code = currency.upper()
    return f"currency{code}" if code in GRAFANA_CURRENCIES else f"suffix: {currency}"


def dashboard_uid(namespace: str, name: str) -> str:
    """Stable uid (Grafana allows 40 characters): readable when short, hashed when not."""
    uid = f"budgetwatch-{namespace}-{name}".lower().replace("_", "-")
    if len(uid) <= 40:
        return uid
    digest = hashlib.sha256(uid.encode()).hexdigest()[:8]
    return f"{uid[:31]}-{digest}"


# --- panel descriptions -------------------------------------------------------------------

PanelKind = Literal["stat", "gauge", "timeseries", "bargauge", "table"]
UnitKind = Literal["currency", "percent", "seconds", "count", "ratio", "rate"]


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""
    instant: bool = False
    table: bool = False


@dataclass(frozen=True)
class PanelDef:
    kind: PanelKind
    title: str
    description: str
    queries: Sequence[Query]
    unit: UnitKind = "count"
    width: int = 6
    height: int = 6
    budget_thresholds: bool = False  # colour by the limits file's warning/critical/exhausted
    no_value: str = ""
    stack: bool = False
    bars: bool = False
    show_name: bool = False  # a stat showing its series' name (an info metric's label)
    agent_link: bool = False  # clicking an agent's value opens the agent detail dashboard
    zero_text: str = ""  # shown instead of a value of 0
    value_texts: Sequence[tuple[str, str, str]] = ()  # (value, text shown, colour)


@dataclass(frozen=True)
class Row:
    title: str


@dataclass(frozen=True)
class DashboardDef:
    name: str  # file stem and uid suffix
    title: str
    description: str
    items: Sequence[PanelDef | Row]
    variables: Sequence[str] = ()  # of "agent", "provider", "model"
    tags: Sequence[str] = field(default_factory=tuple)


def _agent_sel(extra: str = "") -> str:
    return '{gen_ai_agent_id=~"$agent"' + (", " + extra if extra else "") + "}"


def _raw_sel() -> str:
    return (
        '{gen_ai_agent_id=~"$agent", gen_ai_provider_name=~"$provider", '
        'gen_ai_request_model=~"$model"}'
    )


def overview_def(limits: Limits) -> DashboardDef:
    ns = limits.namespace
    prefix = limits.alert_prefix
    return DashboardDef(
        name="overview",
        title=f"{prefix} budget overview",
        description=(
            f"Spend against the budgets of {limits.currency} limits in the limits file: the "
            "organisation's day and billing period, and the agents closest to their limits."
        ),
        tags=("overview",),
        items=[
            Row("Organisation"),
            PanelDef(
                "gauge",
                "Daily budget used",
                "Organisation spend since 00:00 UTC as a percent of the daily limit in force "
                f"({ns}_budget_daily_used_percent, the series the daily budget alerts use).",
                [Query(f"{ns}_budget_daily_used_percent", "daily", instant=True)],
                unit="percent",
                width=5,
                budget_thresholds=True,
                no_value="no daily limit",
            ),
            PanelDef(
                "gauge",
                "Billing period budget used",
                "Organisation spend since the billing period began (reset day "
                f"{limits.billing.reset_day}, 00:00 UTC) as a percent of the monthly limit "
                f"({ns}_budget_used_percent).",
                [Query(f"{ns}_budget_used_percent", "period", instant=True)],
                unit="percent",
                width=5,
                budget_thresholds=True,
                no_value="no monthly limit",
            ),
            PanelDef(
                "stat",
                "Spend today",
                "Organisation spend since 00:00 UTC, and the daily limit in force.",
                [
                    Query(f"{ns}_cost_day_to_date", "spent", instant=True),
                    Query(f"{ns}_budget_daily_limit", "limit", instant=True),
                ],
                unit="currency",
                width=4,
            ),
            PanelDef(
                "stat",
                "Spend this billing period",
                "Organisation spend since the billing period began, and the monthly limit.",
                [
                    Query(f"{ns}_cost_period_to_date", "spent", instant=True),
                    Query(f"{ns}_budget_monthly_limit", "limit", instant=True),
                ],
                unit="currency",
                width=4,
            ),
            PanelDef(
                "stat",
                "Daily budget runs out in",
                "Time left until the organisation's daily budget is spent at the spend rate of "
                "the last hour. Empty when nothing was spent in the last hour. Compare with "
                "the time left until 00:00 UTC, when the budget resets.",
                [
                    Query(
                        f"clamp_min({ns}_budget_daily_limit - {ns}_cost_day_to_date, 0)"
                        f" / (sum(rate({ns}_cost_total[1h])) > 0)",
                        "runs out in",
                        instant=True,
                    )
                ],
                unit="seconds",
                width=3,
                no_value="not at this rate",
                zero_text="already spent",
            ),
            PanelDef(
                "stat",
                "Limits revision in force",
                "The revision of the limits file whose effective_from is the latest one not "
                f"in the future ({ns}_budget_limits_info).",
                [
                    Query(
                        f"max by (revision) ({ns}_budget_limits_info)",
                        "revision {{revision}}",
                        instant=True,
                    )
                ],
                width=3,
                no_value="none in force",
                show_name=True,
            ),
            PanelDef(
                "timeseries",
                "Budget used over time",
                "Organisation percent of the daily and the monthly limit. The daily figure "
                "falls back to zero at 00:00 UTC, the period figure on the reset day.",
                [
                    Query(f"{ns}_budget_daily_used_percent", "daily"),
                    Query(f"{ns}_budget_used_percent", "billing period"),
                ],
                unit="percent",
                width=12,
                height=8,
                budget_thresholds=True,
            ),
            PanelDef(
                "timeseries",
                "Spend per interval",
                "Organisation spend in each interval of the graph (all agents, providers "
                "and models), from the raw cost counters.",
                [Query(f"sum(increase({ns}_cost_total[$__interval]))", "spend")],
                unit="currency",
                width=12,
                height=8,
                bars=True,
            ),
            Row("Agents"),
            PanelDef(
                "timeseries",
                "Spend today by agent",
                "Each agent's spend since 00:00 UTC (stacked): the recorded "
                f"{ns}_agent_cost_day_to_date, which the agent budget alerts use.",
                [
                    Query(
                        f"sum by (gen_ai_agent_id) ({ns}_agent_cost_day_to_date)",
                        "{{gen_ai_agent_id}}",
                    )
                ],
                unit="currency",
                width=12,
                height=9,
                stack=True,
                agent_link=True,
            ),
            PanelDef(
                "bargauge",
                "Top agents by daily budget used",
                "The ten agents with the highest percent of their daily limit. Agents exempt "
                "from a daily limit are not listed.",
                [
                    Query(
                        f"topk(10, {ns}_agent_budget_used_percent)",
                        "{{gen_ai_agent_id}}",
                        instant=True,
                    )
                ],
                unit="percent",
                width=12,
                height=9,
                budget_thresholds=True,
                agent_link=True,
            ),
            PanelDef(
                "table",
                "Budget alerts",
                f"Budget alerts ({prefix}...) pending or firing now, from Prometheus's ALERTS "
                "series: which level, window and agent.",
                [
                    Query(
                        "sum by (alertname, alertstate, severity, window, gen_ai_agent_id) "
                        f'(ALERTS{{alertname=~"{prefix}.*"}})',
                        instant=True,
                        table=True,
                    )
                ],
                width=18,
                height=7,
                no_value="no budget alert",
            ),
            PanelDef(
                "stat",
                "Agents with partial figures",
                "Agents whose figure for today or this billing period is a lower bound "
                f"({ns}_agent_cost_partial): a process was first seen with a running counter "
                "(a new or wiped Prometheus, a pipeline silent for longer than 6 hours), so "
                "spend before that is unknown. Their alerts say 'at least'.",
                [
                    Query(
                        f'count({ns}_agent_cost_partial{{window="daily"}}) or vector(0)',
                        "today",
                        True,
                    ),
                    Query(
                        f'count({ns}_agent_cost_partial{{window="monthly"}}) or vector(0)',
                        "this period",
                        True,
                    ),
                ],
                width=6,
                height=7,
                value_texts=(("0", "none", "green"),),
            ),
        ],
    )


def agent_def(limits: Limits) -> DashboardDef:
    ns = limits.namespace
    sel = _agent_sel()
    raw = _raw_sel()
    status = f"{ns}_task_status"
    completed = _agent_sel(f'{status}="completed"')
    failed = _agent_sel(f'{status}="failed"')
    finished = _agent_sel(f'{status}=~"completed|failed"')
    failed_calls = _agent_sel(f'{ns}_call_outcome="failed"')
    daily, monthly = _agent_sel('window="daily"'), _agent_sel('window="monthly"')
    return DashboardDef(
        name="agent-detail",
        title=f"{limits.alert_prefix} agent budgets and tasks",
        description="One agent or several: spend against limits, cost breakdown, tokens, tasks.",
        tags=("agents",),
        variables=("agent", "provider", "model"),
        items=[
            Row("Budget"),
            PanelDef(
                "stat",
                "Spend today",
                "Spend since 00:00 UTC of the selected agents, and their daily limits.",
                [
                    Query(
                        f"sum by (gen_ai_agent_id) ({ns}_agent_cost_day_to_date{sel})",
                        "{{gen_ai_agent_id}} spent",
                        instant=True,
                    ),
                    Query(
                        f"{ns}_agent_budget_daily_limit{sel}",
                        "{{gen_ai_agent_id}} limit",
                        instant=True,
                    ),
                ],
                unit="currency",
                width=6,
            ),
            PanelDef(
                "gauge",
                "Daily budget used",
                f"Spend today as a percent of the agent's daily limit ({ns}_agent_budget_used_"
                "percent). Exempt agents have no value.",
                [Query(f"{ns}_agent_budget_used_percent{sel}", "{{gen_ai_agent_id}}", True)],
                unit="percent",
                width=6,
                budget_thresholds=True,
                no_value="no daily limit",
            ),
            PanelDef(
                "stat",
                "Spend this billing period",
                "Spend since the billing period began, and the monthly limits.",
                [
                    Query(
                        f"sum by (gen_ai_agent_id) ({ns}_agent_cost_period_to_date{sel})",
                        "{{gen_ai_agent_id}} spent",
                        instant=True,
                    ),
                    Query(
                        f"{ns}_agent_budget_monthly_limit{sel}",
                        "{{gen_ai_agent_id}} limit",
                        instant=True,
                    ),
                ],
                unit="currency",
                width=6,
            ),
            PanelDef(
                "gauge",
                "Billing period budget used",
                "Spend this billing period as a percent of the agent's monthly limit "
                f"({ns}_agent_budget_monthly_used_percent).",
                [
                    Query(
                        f"{ns}_agent_budget_monthly_used_percent{sel}",
                        "{{gen_ai_agent_id}}",
                        instant=True,
                    )
                ],
                unit="percent",
                width=6,
                budget_thresholds=True,
                no_value="no monthly limit",
            ),
            PanelDef(
                "stat",
                "Figures exact or lower bounds",
                "Whether today's and this billing period's figures of the selected agents are "
                f"exact, or lower bounds ({ns}_agent_cost_partial): a process was first seen "
                "with a running counter, so spend before that moment is unknown.",
                [
                    Query(
                        f"max({ns}_agent_cost_partial{daily}) or vector(0)",
                        "today",
                        instant=True,
                    ),
                    Query(
                        f"max({ns}_agent_cost_partial{monthly}) or vector(0)",
                        "this period",
                        instant=True,
                    ),
                ],
                width=24,
                height=3,
                value_texts=(("0", "exact", "green"), ("1", "at least (partial)", "orange")),
            ),
            PanelDef(
                "timeseries",
                "Budget used over time",
                "Percent of the daily limit (resets at 00:00 UTC) and of the monthly limit.",
                [
                    Query(f"{ns}_agent_budget_used_percent{sel}", "{{gen_ai_agent_id}} daily"),
                    Query(
                        f"{ns}_agent_budget_monthly_used_percent{sel}",
                        "{{gen_ai_agent_id}} monthly",
                    ),
                ],
                unit="percent",
                width=24,
                height=8,
                budget_thresholds=True,
            ),
            Row("Cost and tokens"),
            PanelDef(
                "bargauge",
                "Cost by provider and model",
                "Spend over the dashboard's time range by provider and model, from the raw "
                "cost counters (no recorded series has this breakdown).",
                [
                    Query(
                        "sum by (gen_ai_provider_name, gen_ai_request_model) "
                        f"(increase({ns}_cost_total{raw}[$__range]))",
                        "{{gen_ai_provider_name}} {{gen_ai_request_model}}",
                        instant=True,
                    )
                ],
                unit="currency",
                width=8,
                height=8,
            ),
            PanelDef(
                "timeseries",
                "Spend rate by model",
                "Spend per hour by provider and model, averaged over the rate interval.",
                [
                    Query(
                        "sum by (gen_ai_provider_name, gen_ai_request_model) "
                        f"(rate({ns}_cost_total{raw}[$__rate_interval])) * 3600",
                        "{{gen_ai_provider_name}} {{gen_ai_request_model}}",
                    )
                ],
                unit="rate",
                width=8,
                height=8,
            ),
            PanelDef(
                "timeseries",
                "Tokens in and out",
                "Tokens per minute sent to (input) and received from (output) the models.",
                [
                    Query(
                        f"sum by (gen_ai_token_type) (rate({ns}_tokens_total{raw}"
                        "[$__rate_interval])) * 60",
                        "{{gen_ai_token_type}}",
                    )
                ],
                width=8,
                height=8,
            ),
            Row("Tasks"),
            PanelDef(
                "bargauge",
                "Tasks today by status",
                "Tasks that entered each status since 00:00 UTC "
                f"({ns}_agent_tasks_day_to_date). Unassigned tasks are agent _unassigned.",
                [
                    Query(
                        f"sum by ({status}) ({ns}_agent_tasks_day_to_date{sel})",
                        f"{{{{{status}}}}}",
                        instant=True,
                    )
                ],
                width=8,
                height=8,
            ),
            PanelDef(
                "timeseries",
                "Completed tasks today",
                "Tasks completed since 00:00 UTC; the line falls back to zero at midnight, "
                "so each day's peak is that day's count.",
                [
                    Query(
                        f"sum by (gen_ai_agent_id) ({ns}_agent_tasks_day_to_date{completed})",
                        "{{gen_ai_agent_id}}",
                    )
                ],
                width=8,
                height=8,
            ),
            PanelDef(
                "stat",
                "Cost per completed task today",
                "Spend today divided by the tasks completed today, for the selected agents.",
                [
                    Query(
                        f"sum({ns}_agent_cost_day_to_date{sel}) / "
                        f"sum({ns}_agent_tasks_day_to_date"
                        f"{completed})",
                        "per task",
                        instant=True,
                    )
                ],
                unit="currency",
                width=4,
                height=4,
                no_value="no completed task",
            ),
            PanelDef(
                "stat",
                "Task failure ratio today",
                "Tasks that failed today among those that completed or failed today.",
                [
                    Query(
                        # No failed task yet is a ratio of 0, not an empty panel.
                        f"(sum({ns}_agent_tasks_day_to_date{failed}) or vector(0)) / "
                        f"sum({ns}_agent_tasks_day_to_date{finished})",
                        "failed",
                        instant=True,
                    )
                ],
                unit="ratio",
                width=4,
                height=4,
                no_value="no finished task",
            ),
            PanelDef(
                "timeseries",
                "LLM call failure ratio",
                "Share of the selected agents' LLM calls that failed, over the rate interval.",
                [
                    Query(
                        f"(sum(rate({ns}_calls_total{failed_calls}[$__rate_interval]))"
                        " or vector(0))"
                        f" / sum(rate({ns}_calls_total{sel}[$__rate_interval]))",
                        "failed calls",
                    )
                ],
                unit="ratio",
                width=8,
                height=4,
            ),
        ],
    )


def pipeline_def(limits: Limits) -> DashboardDef:
    ns = limits.namespace
    return DashboardDef(
        name="pipeline-health",
        title=f"{limits.alert_prefix} budget pipeline health",
        description=(
            "Is the budget data complete? The app's instrumentation, the OpenTelemetry "
            "Collector, Prometheus's remote-write receiver and the budget rules."
        ),
        tags=("pipeline",),
        items=[
            Row("Data arriving"),
            PanelDef(
                "stat",
                "Cost data last seen",
                "Seconds since the newest cost sample. No value means no cost sample in the "
                "last 5 minutes: check the app and the collector.",
                [Query(f"time() - max(timestamp({ns}_cost_total))", "age", instant=True)],
                unit="seconds",
                width=6,
                no_value="over 5 minutes",
            ),
            PanelDef(
                "timeseries",
                "LLM calls by outcome",
                "Calls per minute: priced (cost recorded), unpriced (cost not known, so "
                "budgets under-count) and failed.",
                [
                    Query(
                        f"sum by ({ns}_call_outcome) (rate({ns}_calls_total[$__rate_interval]))"
                        " * 60",
                        f"{{{{{ns}_call_outcome}}}}",
                    )
                ],
                width=9,
            ),
            PanelDef(
                "timeseries",
                "Instrumentation dropped events",
                "Events the app's instrumentation dropped, by reason (agent_overflow: agent ids "
                "past max_agents, folded into _overflow).",
                [
                    Query(
                        f"sum by (reason) (increase({ns}_telemetry_dropped_total"
                        "[$__rate_interval]))",
                        "{{reason}}",
                    )
                ],
                width=9,
                bars=True,
                no_value="no event dropped",
            ),
            Row("OpenTelemetry Collector"),
            PanelDef(
                "timeseries",
                "Points received and refused",
                "Metric points per second the collector's OTLP receiver accepted and refused "
                "(refused: memory limit or bad data; the app retries).",
                [
                    Query(
                        "sum(rate(otelcol_receiver_accepted_metric_points[$__rate_interval]))",
                        "accepted",
                    ),
                    Query(
                        "sum(rate(otelcol_receiver_refused_metric_points[$__rate_interval]))",
                        "refused",
                    ),
                ],
                width=8,
                height=8,
            ),
            PanelDef(
                "timeseries",
                "Points sent and failed (remote write)",
                "Metric points per second the remote-write exporter sent to Prometheus and "
                "failed to send (after retries: lost).",
                [
                    Query(
                        "sum(rate(otelcol_exporter_sent_metric_points[$__rate_interval]))",
                        "sent",
                    ),
                    Query(
                        # The counter appears with the first failure: until then, 0.
                        "sum(rate(otelcol_exporter_send_failed_metric_points"
                        "[$__rate_interval])) or vector(0)",
                        "failed",
                    ),
                ],
                width=8,
                height=8,
            ),
            PanelDef(
                "timeseries",
                "Remote-write queue",
                "How full the remote-write exporter's queue is (batches waiting over its "
                "capacity). A full queue refuses new data: Prometheus is down or too slow.",
                [
                    Query(
                        "max(otelcol_exporter_queue_size) / max(otelcol_exporter_queue_capacity)",
                        "queue used",
                    ),
                ],
                unit="ratio",
                width=8,
                height=8,
            ),
            Row("Budget rules"),
            PanelDef(
                "timeseries",
                "Rule evaluation duration (p99)",
                "99th percentile of a rule's evaluation time in Prometheus. The budget rules "
                "must finish well within the evaluation interval.",
                [
                    Query(
                        'max(prometheus_rule_evaluation_duration_seconds{quantile="0.99"})',
                        "p99",
                    )
                ],
                unit="seconds",
                width=12,
            ),
            PanelDef(
                "timeseries",
                "Rule evaluation failures",
                "Failed rule evaluations per rule group: a failing budget rule means stale "
                "percentages and silent alerts.",
                [
                    Query(
                        # rule_group is "<file>;<group>": show the group's name only.
                        "label_replace(sum by (rule_group) (increase("
                        "prometheus_rule_evaluation_failures_total[$__rate_interval])),"
                        ' "group", "$1", "rule_group", ".*;(.*)")',
                        "{{group}}",
                    )
                ],
                width=12,
                bars=True,
            ),
        ],
    )


DASHBOARDS: Sequence[Callable[[Limits], DashboardDef]] = (overview_def, agent_def, pipeline_def)


def dashboard_defs(limits: Limits) -> list[DashboardDef]:
    return [make(limits) for make in DASHBOARDS]


def iter_queries(definition: DashboardDef) -> Iterator[tuple[PanelDef, Query]]:
    for item in definition.items:
        if isinstance(item, PanelDef):
            for query in item.queries:
                yield item, query


# --- building with the foundation SDK -----------------------------------------------------

_DS = dash_model.DataSourceRef(type_val="prometheus", uid="${" + DATASOURCE_VARIABLE + "}")


def _unit(kind: UnitKind, currency: str) -> str:
    return {
        "currency": currency_unit(currency),
        "percent": "percent",
        "seconds": "s",
        "count": "short",
        "ratio": "percentunit",
        "rate": currency_unit(currency),
    }[kind]


def _budget_thresholds(limits: Limits) -> dash_builder.ThresholdsConfig:
    t = limits.thresholds
    return (
        dash_builder.ThresholdsConfig()
        .mode(dash_model.ThresholdsMode.ABSOLUTE)
        .steps(
            [
                dash_model.Threshold(value=None, color="green"),
                dash_model.Threshold(value=t.warning, color="yellow"),
                dash_model.Threshold(value=t.critical, color="orange"),
                dash_model.Threshold(value=t.exhausted, color="red"),
            ]
        )
    )


def _plain_thresholds() -> dash_builder.ThresholdsConfig:
    return (
        dash_builder.ThresholdsConfig()
        .mode(dash_model.ThresholdsMode.ABSOLUTE)
        .steps([dash_model.Threshold(value=None, color="blue")])
    )


def _target(query: Query, ref: str) -> prom_builder.Dataquery:
    target = (
        prom_builder.Dataquery()
        .expr(query.expr)
        .ref_id(ref)
        .datasource(_DS)
        .legend_format(query.legend or "__auto")
    )
    if query.table:
        target = target.format(prom_model.PromQueryFormat.TABLE)
    return target.instant() if query.instant else target.range()


def _last_value() -> common_builder.ReduceDataOptions:
    return common_builder.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def _panel(spec: PanelDef, limits: Limits) -> Any:
    unit = _unit(spec.unit, limits.currency)
    thresholds = _budget_thresholds(limits) if spec.budget_thresholds else _plain_thresholds()
    panel: Any
    if spec.kind == "stat":
        panel = (
            stat_builder.Panel()
            .reduce_options(_last_value())
            .graph_mode(common_model.BigValueGraphMode.NONE)
        )
        if spec.show_name:
            panel = panel.text_mode(common_model.BigValueTextMode.NAME)
    elif spec.kind == "gauge":
        # The scale reaches past the exhausted threshold so that an overrun still shows.
        panel = (
            gauge_builder.Panel()
            .reduce_options(_last_value())
            .min(0)
            .max(max(100.0, limits.thresholds.exhausted) * 1.2)
            .show_threshold_markers(True)
        )
    elif spec.kind == "bargauge":
        panel = (
            bargauge_builder.Panel()
            .reduce_options(_last_value())
            .display_mode(common_model.BarGaugeDisplayMode.GRADIENT)
            .orientation(common_model.VizOrientation.HORIZONTAL)
            .min(0)
        )
        if spec.budget_thresholds:
            panel = panel.max(max(100.0, limits.thresholds.exhausted) * 1.2)
    elif spec.kind == "table":
        panel = table_builder.Panel().with_transformation(
            dash_model.DataTransformerConfig(
                id_val="organize",
                options={"excludeByName": {"Time": True, "Value": True}},
            )
        )
    else:
        panel = (
            timeseries_builder.Panel()
            .legend(
                common_builder.VizLegendOptions()
                .display_mode(common_model.LegendDisplayMode.TABLE)
                .placement(common_model.LegendPlacement.BOTTOM)
                .show_legend(True)
                .calcs(["lastNotNull", "max"])
            )
            .line_width(1)
            .fill_opacity(20 if spec.stack or spec.bars else 0)
            .min(0)
        )
        if spec.stack:
            panel = panel.stacking(
                common_builder.StackingConfig().mode(common_model.StackingMode.NORMAL)
            )
        if spec.bars:
            panel = panel.draw_style(common_model.GraphDrawStyle.BARS)
        if spec.budget_thresholds:
            panel = panel.thresholds_style(
                common_builder.GraphThresholdsStyleConfig().mode(
                    common_model.GraphThresholdsStyleMode.LINE
                )
            )
    panel = (
        panel.title(spec.title)
        .description(spec.description)
        .datasource(_DS)
        .unit(unit)
        .thresholds(thresholds)
        .span(spec.width)
        .height(spec.height)
    )
    if spec.no_value:
        panel = panel.no_value(spec.no_value)
    texts = list(spec.value_texts)
    if spec.zero_text:
        texts.append(("0", spec.zero_text, "red"))
    if texts:
        options = {
            value: dash_model.ValueMappingResult(text=text, color=colour)
            for value, text, colour in texts
        }
        panel = panel.mappings([dash_model.ValueMap(options=options)])
    if spec.agent_link:
        detail = dashboard_uid(limits.namespace, "agent-detail")
        panel = panel.data_links(
            [
                dash_builder.DashboardLink("Agent detail for ${__field.labels.gen_ai_agent_id}")
                .type(dash_model.DashboardLinkType.LINK)
                .url(
                    f"/d/{detail}?var-agent=${{__field.labels.gen_ai_agent_id}}"
                    "&${datasource:queryparam}&${__url_time_range}"
                )
            ]
        )
    for index, query in enumerate(spec.queries):
        panel = panel.with_target(_target(query, chr(ord("A") + index)))
    return panel


def _variables(definition: DashboardDef, ns: str) -> list[Any]:
    variables: list[Any] = [
        dash_builder.DatasourceVariable(DATASOURCE_VARIABLE).label("Data source").type("prometheus")
    ]
    matchers: list[str] = []
    label_of = {
        "agent": "gen_ai_agent_id",
        "provider": "gen_ai_provider_name",
        "model": "gen_ai_request_model",
    }
    for name in definition.variables:
        label = label_of[name]
        selector = "{" + ", ".join(matchers) + "}" if matchers else ""
        variables.append(
            dash_builder.QueryVariable(name)
            .label(name.capitalize())
            .datasource(_DS)
            .query(f"label_values({ns}_cost_total{selector}, {label})")
            .refresh(dash_model.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(dash_model.VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            # Regex matchers (=~) take the values; "All" must match every value.
            .all_value(".*")
        )
        matchers.append(f'{label}=~"${name}"')
    return variables


def _check_series(definition: DashboardDef, limits: Limits) -> None:
    known = known_series(limits.namespace)
    for panel, query in iter_queries(definition):
        unknown = series_used(query.expr) - known.keys()
        if unknown:
            raise ValueError(
                f"dashboard {definition.name!r}, panel {panel.title!r}: query uses "
                f"{sorted(unknown)}, which the pipeline does not produce (dashboards.SERIES)"
            )


def build_dashboard(definition: DashboardDef, limits: Limits, source: str) -> dict[str, Any]:
    """The dashboard as Grafana's JSON model (a dict)."""
    _check_series(definition, limits)
    ns = limits.namespace
    builder = (
        dash_builder.Dashboard(definition.title)
        .uid(dashboard_uid(ns, definition.name))
        .description(
            f"{definition.description} Generated by budgetwatch from {source}, do not edit: "
            f"change {source} and run `budgetwatch render`."
        )
        .tags([DASHBOARD_TAG, ns, *definition.tags])
        .timezone("utc")  # budgets reset at 00:00 UTC
        .time("now-24h", "now")
        .refresh("1m")
        .readonly()  # generated: change limits.yaml and render again
        .tooltip(dash_model.DashboardCursorSync.CROSSHAIR)
        .link(
            dash_builder.DashboardLink("Budget dashboards")
            .type(dash_model.DashboardLinkType.DASHBOARDS)
            .tags([DASHBOARD_TAG, ns])
            .as_dropdown(True)
            .keep_time(True)
            .include_vars(True)
        )
    )
    for variable in _variables(definition, ns):
        builder = builder.with_variable(variable)
    panel_id = 1
    for item in definition.items:
        if isinstance(item, Row):
            builder = builder.with_row(dash_builder.Row(item.title).id(panel_id))
        else:
            builder = builder.with_panel(_panel(item, limits).id(panel_id))
        panel_id += 1
    model: dict[str, Any] = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    return model


def render_dashboards(limits: Limits, source: str) -> dict[str, str]:
    """File name -> dashboard JSON text, one per dashboard, stable across runs."""
    files: dict[str, str] = {}
    for definition in dashboard_defs(limits):
        model = build_dashboard(definition, limits, source)
        files[f"budget-{definition.name}.json"] = json.dumps(model, indent=2) + "\n"
    return files


# --- running the panels' queries outside Grafana (tests, the PNG script) -------------------


def expand_variables(
    expr: str,
    *,
    range_s: int,
    interval_s: int,
    rate_interval_s: int,
    variables: Mapping[str, str] | None = None,
) -> str:
    """`expr` as Grafana sends it to Prometheus, for a dashboard range and variable values.

    `variables` maps template variables (agent, provider, model) to the regex Grafana would
    put in their place: ".*" for All. An unknown variable is an error, not left in the query.
    """
    values = {
        "__range": f"{range_s}s",
        "__range_s": str(range_s),
        "__interval": f"{interval_s}s",
        "__rate_interval": f"{rate_interval_s}s",
        **(variables or {}),
    }

    def fill(match: re.Match[str]) -> str:
        name = match.group(0).lstrip("$").strip("{}")
        if name not in values:
            raise KeyError(f"no value for ${name} in {expr!r}")
        return values[name]

    return _VARIABLE_RE.sub(fill, expr)
