"""The bundle spec, part two: every series name for one namespace (`Names`) and how a raw
counter family is kept (`Counter`). Re-exported by budgetwatch.spec, the one place importers
ask; kept in its own module for size. Dependency-free like the rest of the spec.
"""

from __future__ import annotations

from dataclasses import dataclass

from .spec import (
    AGENT,
    CALLS,
    COST,
    DAILY,
    DROPPED,
    EXTERNAL_SERIES,
    HISTORY_HELPER,
    INSTRUMENTS,
    MONTHLY,
    PER_TASK_FIELD,
    PRICED_OUTCOME,
    TASK_COST,
    TASKS,
    TOKENS,
    UNPRICED_OUTCOME,
    WINDOWS,
    Window,
    call_outcome_attr,
    prom_label,
    task_status_attr,
)


@dataclass(frozen=True)
class Names:
    """Every series name for one namespace: raw (contract section 3), published (section 5 and
    section 8's partial flag) and the rules' helpers (`<ns>:level:operations`)."""

    ns: str

    # raw series (section 3)
    @property
    def cost_total(self) -> str:
        return COST.prom_name(self.ns)

    @property
    def tokens_total(self) -> str:
        return TOKENS.prom_name(self.ns)

    @property
    def calls_total(self) -> str:
        return CALLS.prom_name(self.ns)

    @property
    def tasks_total(self) -> str:
        return TASKS.prom_name(self.ns)

    @property
    def dropped_total(self) -> str:
        return DROPPED.prom_name(self.ns)

    @property
    def task_cost(self) -> str:
        """The per-task cost histogram (a Prometheus native histogram)."""
        return prom_label(TASK_COST.otel_name(self.ns))

    @property
    def task_status(self) -> str:
        return prom_label(task_status_attr(self.ns))

    @property
    def call_outcome(self) -> str:
        return prom_label(call_outcome_attr(self.ns))

    def raw(self) -> tuple[str, ...]:
        return tuple(i.prom_name(self.ns) for i in INSTRUMENTS)

    # published series (section 5)
    def org_to_date(self, w: Window) -> str:
        return f"{self.ns}_cost_{w.to_date}"

    def agent_to_date(self, w: Window) -> str:
        return f"{self.ns}_agent_cost_{w.to_date}"

    def org_limit(self, w: Window) -> str:
        return f"{self.ns}_budget_{w.name}_limit"

    def agent_limit(self, w: Window) -> str:
        return f"{self.ns}_agent_budget_{w.name}_limit"

    def org_percent(self, w: Window) -> str:
        return f"{self.ns}_{w.org_percent}"

    def agent_percent(self, w: Window) -> str:
        return f"{self.ns}_{w.agent_percent}"

    @property
    def agent_tasks_day_to_date(self) -> str:
        return f"{self.ns}_agent_tasks_{DAILY.to_date}"

    # per-task cost and coverage (section 8)
    @property
    def agent_per_task_limit(self) -> str:
        return f"{self.ns}_agent_budget_{PER_TASK_FIELD}_limit"

    @property
    def agent_tasks_over_limit_day_to_date(self) -> str:
        return f"{self.ns}_agent_tasks_over_limit_{DAILY.to_date}"

    @property
    def agent_coverage(self) -> str:
        """Per agent: priced calls / (priced + unpriced) calls over the last hour (0-1)."""
        return f"{self.ns}_agent_cost_coverage_ratio"

    @property
    def org_coverage(self) -> str:
        return f"{self.ns}_cost_coverage_ratio"

    def per_task(self) -> tuple[str, ...]:
        return (
            self.agent_per_task_limit,
            self.agent_tasks_over_limit_day_to_date,
            self.agent_coverage,
            self.org_coverage,
        )

    @property
    def limits_info(self) -> str:
        return f"{self.ns}_budget_limits_info"

    @property
    def agent_cost_partial(self) -> str:
        return f"{self.ns}_agent_cost_partial"

    @property
    def exhaustion_seconds(self) -> str:
        return f"{self.ns}_agent_budget_{DAILY.name}_exhaustion_seconds"

    # early warning (section 8): spend expected by the end of the billing period
    @property
    def org_forecast(self) -> str:
        return f"{self.ns}_budget_period_forecast"

    @property
    def org_forecast_percent(self) -> str:
        return f"{self.ns}_budget_period_forecast_percent"

    @property
    def agent_forecast(self) -> str:
        return f"{self.ns}_agent_budget_period_forecast"

    @property
    def agent_forecast_percent(self) -> str:
        return f"{self.ns}_agent_budget_period_forecast_percent"

    def forecasts(self) -> tuple[str, ...]:
        return (
            self.org_forecast,
            self.org_forecast_percent,
            self.agent_forecast,
            self.agent_forecast_percent,
        )

    def published(self) -> tuple[str, ...]:
        """Every series of contract sections 5 and 8 the recording rules publish."""
        per_window = [
            name
            for w in WINDOWS
            for name in (
                self.org_to_date(w),
                self.agent_to_date(w),
                self.org_limit(w),
                self.agent_limit(w),
                self.org_percent(w),
                self.agent_percent(w),
            )
        ]
        return (
            *per_window,
            self.agent_tasks_day_to_date,
            self.limits_info,
            self.agent_cost_partial,
            *self.forecasts(),
            *self.per_task(),
        )

    # helper series (level:metric:operations; not part of the contract)
    def helper(self, level_metric: str, operations: str) -> str:
        return f"{self.ns}:{level_metric}:{operations}"

    def window_start(self, w: Window) -> str:
        return self.helper("time", w.start_helper)

    @property
    def period_days(self) -> str:
        return self.helper("time", "period_days")

    @property
    def agent_rate(self) -> str:
        return self.helper("agent_cost", "rate1h")

    @property
    def running_total(self) -> str:
        """Per agent: every increase ever counted, never reset (no window label): differences
        of it over any trailing window are the spend in that window, across period starts."""
        return self.helper("agent_cost", "running_total")

    def agent_spend(self, window: str) -> str:
        """Per agent: spend over the trailing `window` (a Prometheus duration, `1h`)."""
        return self.helper("agent_cost", f"increase{window}")

    def agent_burn_rate(self, window: str) -> str:
        """Per agent with a monthly limit: spend rate over `window` / even pace of the limit."""
        return self.helper("agent_budget", f"burn_rate{window}")

    def org_burn_rate(self, window: str) -> str:
        return self.helper("budget", f"burn_rate{window}")

    @property
    def agent_spend_baseline(self) -> str:
        """Per agent: average hourly spend over the trailing baseline (spike alert)."""
        return self.helper("agent_cost", "hourly_baseline")

    @property
    def agent_spend_hourly(self) -> str:
        """Per agent: spend over the spike window, as an hourly rate."""
        return self.helper("agent_cost", "hourly_recent")

    @property
    def agent_forecast_rate(self) -> str:
        """Per agent: the trailing rate the period forecast projects with (per second)."""
        return self.helper("agent_cost", "forecast_rate")

    @property
    def early_warning_heartbeat(self) -> str:
        return self.helper("budget_early_warning_rules", "evaluated")

    @property
    def cost_series(self) -> str:
        return self.helper("cost_series", "count")

    def partial_since(self, w: Window) -> str:
        """Helper: since when an agent's figure of that window is a lower bound."""
        return self.helper("agent_cost", f"{w.name}_partial_since")

    def accumulator(self, level: str, w: Window) -> str:
        return self.helper(level, f"{w.name}_total")

    def day_end(self, level: str) -> str:
        """The period total at the last evaluation of each day (long recovery)."""
        return self.helper(level, f"{MONTHLY.name}_total_day_end")

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
    def calls_counter(self) -> Counter:
        """Priced and unpriced calls per agent and outcome (the coverage ratio; failed calls have
        no cost to know and count on neither side)."""
        outcomes = "|".join((PRICED_OUTCOME, UNPRICED_OUTCOME))
        return Counter(
            raw=f'{self.calls_total}{{{self.call_outcome}=~"{outcomes}"}}',
            keep=(AGENT, self.call_outcome),
            level=f"{self.ns}:agent_instance_calls",
            acc_level="agent_calls",
            heartbeat=self.helper("budget_coverage_rules", "evaluated"),
        )

    @property
    def task_cost_histogram(self) -> Counter:
        """The per-task cost histogram per agent and process; its accumulators count tasks over
        the agent's per-task limit."""
        return Counter(
            raw=self.task_cost,
            keep=(AGENT,),
            level=f"{self.ns}:agent_instance_task_cost",
            acc_level="agent_tasks_over_limit",
            heartbeat=self.helper("budget_task_cost_rules", "evaluated"),
        )

    @property
    def tasks_over_limit_running_total(self) -> str:
        """Per agent: over-limit tasks ever counted, never reset (the alert's last hour)."""
        return self.helper("agent_tasks_over_limit", "running_total")

    @property
    def tasks_counter(self) -> Counter:
        return Counter(
            raw=self.tasks_total,
            keep=(AGENT, self.task_status),
            level=f"{self.ns}:agent_instance_tasks",
            acc_level="agent_tasks",
            heartbeat=self.helper("budget_task_rules", "evaluated"),
        )

    def origins(self) -> dict[str, str]:
        """Every series a dashboard may query -> what produces it."""
        found = dict.fromkeys(self.published(), "rules")
        found[self.agent_cost_partial] = "rules, while a figure is a lower bound only"
        for name in self.forecasts():
            found[name] = "rules, only once the billing period is forecast.min_history old"
        # Per-task cost and coverage: empty until their events happen ("only once").
        found[self.task_cost] = "instrumentation, only once a task with a task_id has finished"
        found[self.agent_tasks_over_limit_day_to_date] = (
            "rules, only once tasks with a task_id finished under a per_task limit"
        )
        found[self.agent_per_task_limit] = "rules, only once an agent with a per_task limit is seen"
        for name in (self.agent_coverage, self.org_coverage):
            found[name] = "rules, only once priced or unpriced calls were recorded in the last hour"
        found["ALERTS"] = "rules"  # Prometheus's own series of pending and firing alerts
        for name in self.raw():
            found[name] = "instrumentation"
        found[self.dropped_total] = "instrumentation, after a dropped event only"
        # Early-warning helpers the dashboards read (the default burn-rate windows): they need
        # history, see docs/rules.md.
        for name in (
            *(self.agent_burn_rate(w) for w in ("1h", "6h", "3d")),
            self.agent_spend_hourly,
            self.agent_spend_baseline,
        ):
            found[name] = HISTORY_HELPER
        return {**found, **EXTERNAL_SERIES}


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
