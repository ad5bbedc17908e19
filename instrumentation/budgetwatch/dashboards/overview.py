"""The budget overview dashboard: the organisation's day and period, the agents nearest
their limits, budget alerts now."""

from __future__ import annotations

from ..limits import Limits
from ..spec import AGENT, DAILY, MONTHLY, SEVERITY_LABEL, WINDOW_LABEL, Names, alert_prefix
from .early_warning import overview_panels
from .panels import (
    AGENT_LEGEND,
    DashboardDef,
    PanelDef,
    Query,
    Row,
    agent_coverage,
    legend,
    org_coverage,
    percent_gauge,
    spend_stat,
    task_cost_over_range,
    task_cost_queries,
    window_matcher,
    with_coverage,
)


def overview_def(limits: Limits) -> DashboardDef:
    n = Names(limits.namespace)
    return DashboardDef(
        name="overview",
        title=f"{alert_prefix(n.ns)} budget overview",
        description=(
            f"Spend against the budgets of {limits.currency} limits in the limits file: the "
            "organisation's day and billing period, and the agents closest to their limits."
        ),
        tags=("overview",),
        items=[
            *_organisation_now(n, limits),
            *_organisation_figures(n, limits),
            *_organisation_graphs(n, limits),
            *_agents(n, limits),
            *_tasks(n, limits),
            *overview_panels(n, limits),
            *_alerts_and_partial(n, limits),
        ],
    )


def _organisation_now(n: Names, limits: Limits) -> list[PanelDef | Row]:
    """Today and this billing period: percent of the limits."""
    return [
        Row("Organisation"),
        percent_gauge(
            "Daily budget used",
            "Organisation spend since 00:00 UTC as a percent of the daily limit in force "
            f"({n.org_percent(DAILY)}, the series the daily budget alerts use).",
            Query(f"{n.org_percent(DAILY)}", "daily", instant=True),
            org_coverage(n),
            no_value="no daily limit",
            width=5,
        ),
        percent_gauge(
            "Billing period budget used",
            "Organisation spend since the billing period began (reset day "
            f"{limits.billing.reset_day}, 00:00 UTC) as a percent of the monthly limit "
            f"({n.org_percent(MONTHLY)}).",
            Query(f"{n.org_percent(MONTHLY)}", "period", instant=True),
            org_coverage(n),
            no_value="no monthly limit",
            width=5,
        ),
    ]


def _organisation_figures(n: Names, limits: Limits) -> list[PanelDef | Row]:
    """Spend against limits, time left, and the revision in force."""
    return [
        spend_stat(
            "Spend today",
            "Organisation spend since 00:00 UTC, and the daily limit in force.",
            Query(f"{n.org_to_date(DAILY)}", "spent", instant=True),
            Query(f"{n.org_limit(DAILY)}", "limit", instant=True),
            org_coverage(n),
            width=4,
        ),
        spend_stat(
            "Spend this billing period",
            "Organisation spend since the billing period began, and the monthly limit.",
            Query(f"{n.org_to_date(MONTHLY)}", "spent", instant=True),
            Query(f"{n.org_limit(MONTHLY)}", "limit", instant=True),
            org_coverage(n),
            width=4,
        ),
        with_coverage(
            PanelDef(
                "stat",
                "Daily budget runs out in",
                "Time left until the organisation's daily budget is spent at the spend rate of "
                "the last hour. Empty when nothing was spent in the last hour. Compare with "
                "the time left until 00:00 UTC, when the budget resets.",
                [
                    Query(
                        f"clamp_min({n.org_limit(DAILY)} - {n.org_to_date(DAILY)}, 0)"
                        f" / (sum(rate({n.cost_total}[1h])) > 0)",
                        "runs out in",
                        instant=True,
                    )
                ],
                unit="seconds",
                width=3,
                no_value="not at this rate",
                zero_text="already spent",
            ),
            org_coverage(n),
        ),
        PanelDef(
            "stat",
            "Limits revision in force",
            "The revision of the limits file whose effective_from is the latest one not "
            f"in the future ({n.limits_info}).",
            [
                Query(
                    f"max by (revision) ({n.limits_info})",
                    "revision {{revision}}",
                    instant=True,
                )
            ],
            width=3,
            no_value="none in force",
            show_name=True,
        ),
    ]


def _organisation_graphs(n: Names, limits: Limits) -> list[PanelDef | Row]:
    """Budget used and spend over the dashboard's time range."""
    return [
        with_coverage(
            PanelDef(
                "timeseries",
                "Budget used over time",
                "Organisation percent of the daily and the monthly limit. The daily figure "
                "falls back to zero at 00:00 UTC, the period figure on the reset day.",
                [
                    Query(f"{n.org_percent(DAILY)}", "daily"),
                    Query(f"{n.org_percent(MONTHLY)}", "billing period"),
                ],
                unit="percent",
                width=12,
                height=8,
                budget_thresholds=True,
            ),
            org_coverage(n),
        ),
        with_coverage(
            PanelDef(
                "timeseries",
                "Spend per interval",
                "Organisation spend in each interval of the graph (all agents, providers "
                "and models), from the raw cost counters.",
                [Query(f"sum(increase({n.cost_total}[$__interval]))", "spend")],
                unit="currency",
                width=12,
                height=8,
                bars=True,
            ),
            org_coverage(n),
        ),
    ]


def _agents(n: Names, limits: Limits) -> list[PanelDef | Row]:
    """The agents: spend today and the closest to their daily limits."""
    top = f"topk(10, {n.agent_percent(DAILY)})"
    return [
        Row("Agents"),
        with_coverage(
            PanelDef(
                "timeseries",
                "Spend today by agent",
                "Each agent's spend since 00:00 UTC (stacked): the recorded "
                f"{n.agent_to_date(DAILY)}, which the agent budget alerts use.",
                [Query(f"sum by ({AGENT}) ({n.agent_to_date(DAILY)})", AGENT_LEGEND)],
                unit="currency",
                width=12,
                height=9,
                stack=True,
                agent_link=True,
            ),
            agent_coverage(n),
        ),
        with_coverage(
            PanelDef(
                "bargauge",
                "Top agents by daily budget used",
                "The ten agents with the highest percent of their daily limit. Agents exempt "
                "from a daily limit are not listed.",
                [Query(top, AGENT_LEGEND, instant=True)],
                unit="percent",
                width=12,
                height=9,
                budget_thresholds=True,
                agent_link=True,
            ),
            Query(
                f"{n.agent_coverage} and on({AGENT}) {top}",
                legend(AGENT, suffix="coverage"),
                coverage=True,
            ),
        ),
    ]


def _tasks(n: Names, limits: Limits) -> list[PanelDef | Row]:
    """Cost per task: each agent's distribution and its tasks over the per-task limit."""
    tasks = f"histogram_count({task_cost_over_range(n)}) > 0"
    return [
        Row("Per-task cost"),
        with_coverage(
            PanelDef(
                "table",
                "Cost per task by agent",
                "Per agent, the tasks finished in the dashboard's time range (tasks recorded "
                f"with a task_id, {n.task_cost}) and their cost: median, p90 and the max "
                "bucket (the upper edge of the histogram bucket holding the most expensive "
                "task: that task cost at most this, within one bucket, about 1 %); then the "
                f"per-task limit in force ({n.agent_per_task_limit}) and the tasks finished "
                f"today over it ({n.agent_tasks_over_limit_day_to_date}).",
                [
                    Query(tasks, instant=True, table=True, unit="count", column="tasks"),
                    *task_cost_queries(n, table=True),
                    Query(
                        n.agent_per_task_limit,
                        instant=True,
                        table=True,
                        column="per-task limit",
                    ),
                    Query(
                        n.agent_tasks_over_limit_day_to_date,
                        instant=True,
                        table=True,
                        unit="count",
                        column="over limit today",
                    ),
                ],
                unit="currency",
                width=18,
                height=8,
                no_value="no task finished with a task_id",
                agent_link=True,
            ),
            agent_coverage(n),
        ),
        with_coverage(
            PanelDef(
                "stat",
                "Tasks over their limit today",
                "Tasks finished since 00:00 UTC whose cost exceeded their agent's per-task "
                f"limit, all agents ({n.agent_tasks_over_limit_day_to_date}); the "
                "per-agent figures are in the table beside.",
                [
                    Query(
                        f"sum({n.agent_tasks_over_limit_day_to_date})",
                        "over limit",
                        instant=True,
                    )
                ],
                width=6,
                height=8,
                no_value="no per-task limit",
            ),
            org_coverage(n),
        ),
    ]


def _alerts_and_partial(n: Names, limits: Limits) -> list[PanelDef | Row]:
    """Budget alerts now, and agents whose figures are lower bounds."""
    prefix = alert_prefix(n.ns)
    return [
        PanelDef(
            "table",
            "Budget alerts",
            f"Budget alerts ({prefix}...) pending or firing now, from Prometheus's ALERTS "
            "series: which level, window and agent.",
            [
                Query(
                    f"sum by (alertname, alertstate, {SEVERITY_LABEL}, {WINDOW_LABEL}, {AGENT}) "
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
            f"({n.agent_cost_partial}): a process was first seen with a running counter "
            "(a new or wiped Prometheus, a pipeline silent for longer than 6 hours), so "
            "spend before that is unknown. Their alerts say 'at least'.",
            [
                Query(
                    f"count({n.agent_cost_partial}{window_matcher(DAILY)}) or vector(0)",
                    "today",
                    True,
                ),
                Query(
                    f"count({n.agent_cost_partial}{window_matcher(MONTHLY)}) or vector(0)",
                    "this period",
                    True,
                ),
            ],
            width=6,
            height=7,
            value_texts=(("0", "none", "green"),),
        ),
    ]
