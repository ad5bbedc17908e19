"""The public series names of the contract (shared/design/contract.md), for the default
namespace `synthorg`: what tests compare generated rules, runbooks and dashboards against."""

from __future__ import annotations

# Section 3, plus the calls counter and the instrumentation's self-monitoring.
RAW_SERIES = frozenset(
    {
        "synthorg_cost_total",
        "synthorg_tokens_total",
        "synthorg_tasks_total",
        "synthorg_calls_total",
        "synthorg_telemetry_dropped_total",
    }
)

# Section 5: the series the recording rules publish.
RECORDED_SERIES = frozenset(
    {
        "synthorg_cost_day_to_date",
        "synthorg_cost_period_to_date",
        "synthorg_agent_cost_day_to_date",
        "synthorg_agent_cost_period_to_date",
        "synthorg_budget_daily_limit",
        "synthorg_budget_monthly_limit",
        "synthorg_agent_budget_daily_limit",
        "synthorg_agent_budget_monthly_limit",
        "synthorg_budget_daily_used_percent",
        "synthorg_budget_used_percent",
        "synthorg_agent_budget_used_percent",
        "synthorg_agent_budget_monthly_used_percent",
        "synthorg_agent_tasks_day_to_date",
        "synthorg_budget_limits_info",
        # section 8, from the outages issue
        "synthorg_agent_cost_partial",
        # section 8, from the early-warning issue
        "synthorg_budget_period_forecast",
        "synthorg_budget_period_forecast_percent",
        "synthorg_agent_budget_period_forecast",
        "synthorg_agent_budget_period_forecast_percent",
        # section 8, from the per-task cost issue
        "synthorg_agent_budget_per_task_limit",
        "synthorg_agent_tasks_over_limit_day_to_date",
        "synthorg_agent_cost_coverage_ratio",
        "synthorg_cost_coverage_ratio",
    }
)

# Section 6: the alert names without the `<Ns>` prefix (plus the two alerts of the rules'
# own design: the daily exhaustion forecast and absent telemetry).
ALERT_SUFFIXES = frozenset(
    {
        "AgentBudgetWarning",
        "AgentBudgetCritical",
        "AgentBudgetExhausted",
        "BudgetWarning",
        "BudgetCritical",
        "BudgetExhausted",
        "AgentBudgetExhaustionForecast",
        "BudgetTelemetryAbsent",
        # section 8, from the early-warning issue
        "BudgetForecastOverrun",
        "AgentBudgetForecastOverrun",
        "BudgetBurnRateHigh",
        "AgentBudgetBurnRateHigh",
        "AgentSpendSpike",
        # section 8, from the per-task cost issue
        "AgentTaskOverBudget",
        "BudgetCoverageLow",
    }
)

# Section 2: the OTLP instruments for namespace `synthorg`, with their attributes.
OTLP_INSTRUMENTS = {
    "synthorg.cost": {"gen_ai.agent.id", "gen_ai.provider.name", "gen_ai.request.model"},
    "synthorg.tokens": {
        "gen_ai.agent.id",
        "gen_ai.provider.name",
        "gen_ai.request.model",
        "gen_ai.token.type",
    },
    "synthorg.tasks": {"gen_ai.agent.id", "synthorg.task.status"},
}
