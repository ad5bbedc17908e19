"""The agent detail dashboard: one agent or several, spend against limits, cost breakdown,
tokens, tasks."""

from __future__ import annotations

from ..limits import Limits
from ..spec import AGENT, DAILY, MODEL, MONTHLY, PROVIDER, TOKEN_TYPE, Names, alert_prefix
from .early_warning import agent_panels
from .panels import (
    AGENT_LEGEND,
    PROVIDER_MODEL,
    DashboardDef,
    PanelDef,
    Query,
    Row,
    agent_coverage,
    agent_sel,
    legend,
    percent_gauge,
    raw_sel,
    spend_stat,
    task_cost_queries,
    window_sel,
    with_coverage,
)

SEL = agent_sel()  # the agents picked in the dashboard's variable
RAW = raw_sel()  # and the providers and models, on the raw counters


def _status_sel(n: Names, *statuses: str) -> str:
    """The selected agents' task series in one of `statuses`."""
    if len(statuses) == 1:
        return agent_sel(f'{n.task_status}="{statuses[0]}"')
    return agent_sel(f'{n.task_status}=~"{"|".join(statuses)}"')


def agent_def(limits: Limits) -> DashboardDef:
    n = Names(limits.namespace)
    return DashboardDef(
        name="agent-detail",
        title=f"{alert_prefix(n.ns)} agent budgets and tasks",
        description="One agent or several: spend against limits, cost breakdown, tokens, tasks.",
        tags=("agents",),
        variables=("agent", "provider", "model"),
        items=[
            *_spend(n, limits),
            *_percent_and_partial(n, limits),
            *agent_panels(n, limits),
            *_cost_and_tokens(n, limits),
            *_tasks(n, limits),
            *_failures(n, limits),
            *_task_cost(n),
        ],
    )


def _spend(n: Names, limits: Limits) -> list[PanelDef | Row]:
    """Spend today and this period against the selected agents' limits."""
    return [
        Row("Budget"),
        spend_stat(
            "Spend today",
            "Spend since 00:00 UTC of the selected agents, and their daily limits.",
            Query(
                f"sum by ({AGENT}) ({n.agent_to_date(DAILY)}{SEL})",
                legend(AGENT, suffix="spent"),
                instant=True,
            ),
            Query(f"{n.agent_limit(DAILY)}{SEL}", legend(AGENT, suffix="limit"), instant=True),
            agent_coverage(n, SEL),
            width=6,
        ),
        percent_gauge(
            "Daily budget used",
            f"Spend today as a percent of the agent's daily limit ({n.agent_percent(DAILY)}). "
            "Exempt agents have no value.",
            Query(f"{n.agent_percent(DAILY)}{SEL}", AGENT_LEGEND, instant=True),
            agent_coverage(n, SEL),
            no_value="no daily limit",
            width=6,
        ),
        spend_stat(
            "Spend this billing period",
            "Spend since the billing period began, and the monthly limits.",
            Query(
                f"sum by ({AGENT}) ({n.agent_to_date(MONTHLY)}{SEL})",
                legend(AGENT, suffix="spent"),
                instant=True,
            ),
            Query(f"{n.agent_limit(MONTHLY)}{SEL}", legend(AGENT, suffix="limit"), instant=True),
            agent_coverage(n, SEL),
            width=6,
        ),
    ]


def _percent_and_partial(n: Names, limits: Limits) -> list[PanelDef | Row]:
    """Budget used now and over time, and whether figures are exact."""
    return [
        percent_gauge(
            "Billing period budget used",
            "Spend this billing period as a percent of the agent's monthly limit "
            f"({n.agent_percent(MONTHLY)}).",
            Query(f"{n.agent_percent(MONTHLY)}{SEL}", AGENT_LEGEND, instant=True),
            agent_coverage(n, SEL),
            no_value="no monthly limit",
            width=6,
        ),
        PanelDef(
            "stat",
            "Figures exact or lower bounds",
            "Whether today's and this billing period's figures of the selected agents are "
            f"exact, or lower bounds ({n.agent_cost_partial}): a process was first seen "
            "with a running counter, so spend before that moment is unknown.",
            [
                Query(
                    f"max({n.agent_cost_partial}{window_sel(DAILY)}) or vector(0)",
                    "today",
                    instant=True,
                ),
                Query(
                    f"max({n.agent_cost_partial}{window_sel(MONTHLY)}) or vector(0)",
                    "this period",
                    instant=True,
                ),
            ],
            width=24,
            height=3,
            value_texts=(("0", "exact", "green"), ("1", "at least (partial)", "orange")),
        ),
        with_coverage(
            PanelDef(
                "timeseries",
                "Budget used over time",
                "Percent of the daily limit (resets at 00:00 UTC) and of the monthly limit.",
                [
                    Query(f"{n.agent_percent(DAILY)}{SEL}", legend(AGENT, suffix="daily")),
                    Query(f"{n.agent_percent(MONTHLY)}{SEL}", legend(AGENT, suffix="monthly")),
                ],
                unit="percent",
                width=24,
                height=8,
                budget_thresholds=True,
            ),
            agent_coverage(n, SEL),
        ),
    ]


def _cost_and_tokens(n: Names, limits: Limits) -> list[PanelDef | Row]:
    """Where the money goes: providers, models, tokens."""
    return [
        Row("Cost and tokens"),
        with_coverage(
            PanelDef(
                "bargauge",
                "Cost by provider and model",
                "Spend over the dashboard's time range by provider and model, from the raw "
                "cost counters (no recorded series has this breakdown); unpriced calls add "
                "nothing here, whatever they cost.",
                [
                    Query(
                        f"sum by ({PROVIDER_MODEL}) (increase({n.cost_total}{RAW}[$__range]))",
                        legend(PROVIDER, MODEL),
                        instant=True,
                    )
                ],
                unit="currency",
                width=8,
                height=8,
            ),
            agent_coverage(n, SEL),
        ),
        with_coverage(
            PanelDef(
                "timeseries",
                "Spend rate by model",
                "Spend per hour by provider and model, averaged over the rate interval.",
                [
                    Query(
                        f"sum by ({PROVIDER_MODEL}) "
                        f"(rate({n.cost_total}{RAW}[$__rate_interval])) * 3600",
                        legend(PROVIDER, MODEL),
                    )
                ],
                unit="rate",
                width=8,
                height=8,
            ),
            agent_coverage(n, SEL),
        ),
        PanelDef(
            "timeseries",
            "Tokens in and out",
            "Tokens per minute sent to (input) and received from (output) the models.",
            [
                Query(
                    f"sum by ({TOKEN_TYPE}) (rate({n.tokens_total}{RAW}[$__rate_interval])) * 60",
                    legend(TOKEN_TYPE),
                )
            ],
            width=8,
            height=8,
        ),
    ]


def _tasks(n: Names, limits: Limits) -> list[PanelDef | Row]:
    """Tasks by status today, and the cost per completed task."""
    completed = _status_sel(n, "completed")
    return [
        Row("Tasks"),
        PanelDef(
            "bargauge",
            "Tasks today by status",
            "Tasks that entered each status since 00:00 UTC "
            f"({n.agent_tasks_day_to_date}). Unassigned tasks are agent _unassigned.",
            [
                Query(
                    f"sum by ({n.task_status}) ({n.agent_tasks_day_to_date}{SEL})",
                    legend(n.task_status),
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
                    f"sum by ({AGENT}) ({n.agent_tasks_day_to_date}{completed})",
                    AGENT_LEGEND,
                )
            ],
            width=8,
            height=8,
        ),
        with_coverage(
            PanelDef(
                "stat",
                "Cost per completed task today",
                "Spend today divided by the tasks completed today, for the selected agents.",
                [
                    Query(
                        f"sum({n.agent_to_date(DAILY)}{SEL}) / "
                        f"sum({n.agent_tasks_day_to_date}{completed})",
                        "per task",
                        instant=True,
                    )
                ],
                unit="currency",
                width=4,
                height=4,
                no_value="no completed task",
            ),
            agent_coverage(n, SEL),
        ),
    ]


def _task_cost(n: Names) -> list[PanelDef | Row]:
    """The distribution of task costs and the tasks over the per-task limit."""
    return [
        Row("Per-task cost"),
        with_coverage(
            PanelDef(
                "stat",
                "Cost per task",
                "Cost of the selected agents' tasks finished in the dashboard's time range "
                f"(tasks recorded with a task_id, {n.task_cost}): median, p90 and the max "
                "bucket (the upper edge of the histogram bucket holding the most expensive "
                "task: it cost at most this, within one bucket, about 1 %), and the per-task "
                f"limit in force ({n.agent_per_task_limit}).",
                [
                    *task_cost_queries(n, SEL),
                    Query(
                        f"{n.agent_per_task_limit}{SEL}",
                        legend(AGENT, suffix="limit"),
                        instant=True,
                    ),
                ],
                unit="currency",
                width=12,
                height=6,
                no_value="no task finished with a task_id",
            ),
            agent_coverage(n, SEL),
        ),
        with_coverage(
            PanelDef(
                "timeseries",
                "Tasks over the per-task limit today",
                "Tasks finished since 00:00 UTC whose cost exceeded the agent's per-task "
                f"limit ({n.agent_tasks_over_limit_day_to_date}; the limit is in Cost per "
                "task beside). Falls back to zero at 00:00 UTC.",
                [
                    Query(
                        f"{n.agent_tasks_over_limit_day_to_date}{SEL}",
                        legend(AGENT, suffix="over limit"),
                    )
                ],
                width=12,
                height=6,
            ),
            agent_coverage(n, SEL),
        ),
    ]


def _failures(n: Names, limits: Limits) -> list[PanelDef | Row]:
    """Failure ratios of tasks and LLM calls."""
    failed, finished = _status_sel(n, "failed"), _status_sel(n, "completed", "failed")
    failed_calls = agent_sel(f'{n.call_outcome}="failed"')
    return [
        PanelDef(
            "stat",
            "Task failure ratio today",
            "Tasks that failed today among those that completed or failed today.",
            [
                Query(
                    # No failed task yet is a ratio of 0, not an empty panel.
                    f"(sum({n.agent_tasks_day_to_date}{failed}) or vector(0)) / "
                    f"sum({n.agent_tasks_day_to_date}{finished})",
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
                    f"(sum(rate({n.calls_total}{failed_calls}[$__rate_interval]))"
                    " or vector(0))"
                    f" / sum(rate({n.calls_total}{SEL}[$__rate_interval]))",
                    "failed calls",
                )
            ],
            unit="ratio",
            width=8,
            height=4,
        ),
    ]
