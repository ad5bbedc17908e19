"""The bundle spec: every name and window the artifacts share, written once.

The instrumentation, the recording and alerting rules, the dashboards, the Alertmanager
config's tests, the runbooks' tests and the dev stack all ask this module for names; none
spells a series, a label or a window itself. docs/architecture.md shows which lines to edit to
rename a series or add a window.

Dependency-free (standard library only) so that the runtime may import it: importing
`budgetwatch` to record events stays light.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

# --- OTLP (contract section 2) and their Prometheus forms (section 3) ----------------------

SCOPE: Final = "budgetwatch"  # instrumentation scope
AGENT_ATTR: Final = "gen_ai.agent.id"
PROVIDER_ATTR: Final = "gen_ai.provider.name"
MODEL_ATTR: Final = "gen_ai.request.model"
TOKEN_TYPE_ATTR: Final = "gen_ai.token.type"
REASON_ATTR: Final = "reason"  # of <ns>.telemetry.dropped


def prom_label(attribute: str) -> str:
    """The label Prometheus stores for an OTLP attribute (`UnderscoreEscapingWithSuffixes`)."""
    return attribute.replace(".", "_")


AGENT: Final = prom_label(AGENT_ATTR)  # gen_ai_agent_id
PROVIDER: Final = prom_label(PROVIDER_ATTR)  # gen_ai_provider_name
MODEL: Final = prom_label(MODEL_ATTR)  # gen_ai_request_model
TOKEN_TYPE: Final = prom_label(TOKEN_TYPE_ATTR)  # gen_ai_token_type
REASON: Final = prom_label(REASON_ATTR)
# Labels the rules and alerts add (contract sections 5, 6, 8).
WINDOW_LABEL: Final = "window"
SEVERITY_LABEL: Final = "severity"
LEVEL_LABEL: Final = "budget_level"
REVISION_LABEL: Final = "revision"
LIMIT_LABEL: Final = "limit"  # the limit in force, joined onto agent alerts
# An agent alert raised on a lower bound (a partial figure) carries figure="lower_bound": two
# rules of one alertname need distinct labels.
FIGURE_LABEL: Final = "figure"
LOWER_BOUND: Final = "lower_bound"
# Burn-rate alerts name the pair of windows they compare (contract section 8).
LONG_WINDOW_LABEL: Final = "long_window"
SHORT_WINDOW_LABEL: Final = "short_window"


@dataclass(frozen=True)
class Instrument:
    """One OTLP counter: `<ns>.<suffix>` over OTLP, `<ns>_<suffix>_total` in Prometheus."""

    suffix: str
    unit: str  # "" = the currency in braces
    description: str

    def otel_name(self, ns: str) -> str:
        return f"{ns}.{self.suffix}"

    def prom_name(self, ns: str) -> str:
        return f"{prom_label(self.otel_name(ns))}_total"


COST: Final = Instrument(
    "cost", "", "Cost of LLM calls in {currency}, per agent, provider and model"
)
TOKENS: Final = Instrument(
    "tokens", "{token}", "Tokens used by LLM calls, per agent, provider, model and token type"
)
CALLS: Final = Instrument(
    "calls", "{call}", "LLM calls per outcome: priced (cost known), unpriced, failed"
)
TASKS: Final = Instrument(
    "tasks", "{task}", "Task status changes, per agent and the status the task entered"
)
DROPPED: Final = Instrument(
    "telemetry.dropped",
    "{event}",
    "Events (or parts of events) budgetwatch dropped or folded, per reason",
)
INSTRUMENTS: Final = (COST, TOKENS, CALLS, TASKS, DROPPED)
# Per-task cost (contract section 8): an OTLP exponential histogram, stored by Prometheus as a
# native histogram named `<ns>_task_cost` (no `_total`: it is not a counter).
TASK_COST: Final = Instrument(
    "task.cost", "", "Cost of each finished task in {currency}, per agent and terminal status"
)
# A task's cost is recorded when it enters one of these statuses (record_task).
TERMINAL_STATUSES: Final = ("completed", "failed", "cancelled", "rejected", "interrupted")
# Call outcomes (`<ns>.call.outcome`): coverage is priced / (priced + unpriced); a failed call
# has no cost to know, so it counts on neither side.
PRICED_OUTCOME: Final = "priced"
UNPRICED_OUTCOME: Final = "unpriced"
FAILED_OUTCOME: Final = "failed"
# The limits field of the per-task limit, beside `daily`/`monthly` (contract section 8).
PER_TASK_FIELD: Final = "per_task"
# Trailing window of the coverage ratio and of the over-limit task alert.
COVERAGE_WINDOW: Final = "1h"
TASK_ALERT_WINDOW: Final = "1h"


def task_status_attr(ns: str) -> str:
    return f"{ns}.task.status"


def call_outcome_attr(ns: str) -> str:
    return f"{ns}.call.outcome"


def alert_prefix(ns: str) -> str:
    """The namespace with a capital first letter, as in alert names: `Synthorg`."""
    return ns[:1].upper() + ns[1:]


# --- windows --------------------------------------------------------------------------------

DAY_SECONDS: Final = 86400
WindowName = Literal["daily", "monthly"]


def day_start_expr(day_seconds: int = DAY_SECONDS, reset_day: int = 1) -> str:
    """PromQL: the start of the current day, in seconds (00:00 UTC)."""
    del reset_day  # a day starts at 00:00 whatever the billing period
    return f"floor(vector(time()) / {day_seconds}) * {day_seconds}"


def period_start_expr(day_seconds: int = DAY_SECONDS, reset_day: int = 1) -> str:
    """PromQL: the start of the current billing period, day `reset_day` (1-28) at 00:00 UTC.

    Calendar months have real days: the billing period is computed on the real calendar
    whatever `day_seconds` a test calendar uses for days.
    """
    del day_seconds
    day = DAY_SECONDS
    day_start = day_start_expr(day)
    dom = "day_of_month(vector(time()))"
    if reset_day == 1:
        return f"{day_start} - ({dom} - 1) * {day}"
    # Day R of this month when today is on or after it, else day R of last month.
    this_month = f"{day_start} - ({dom} - {reset_day}) * {day}"
    last_month = (
        f"{day_start} - ({dom} - 1) * {day}\n"
        f"  - (days_in_month({day_start} - {dom} * {day}) - {reset_day} + 1) * {day}"
    )
    return f"({this_month} and on() ({dom} >= {reset_day}))\nor\n({last_month})"


@dataclass(frozen=True)
class Window:
    """A calendar window budgets are kept over: one row of `WINDOWS`.

    name          the `window` label of alerts and partial flags; also the limits.yaml field
                  (`daily:`/`monthly:`) holding its limit and the word in limit series names
    label         the label the rules' accumulators carry: the current window's start, in
                  days since 1970
    edge          PromQL of the current window's start, in seconds (day length, reset day)
    to_date       the published spend series: `<ns>_[agent_]cost_<to_date>`
    org_percent   `<ns>_<org_percent>`: org spend / org limit x 100
    agent_percent `<ns>_<agent_percent>`: agent spend / agent limit x 100
    when          how alert text says the window
    prorated_from a window whose org limit, when the limits file gives none for this one, is
                  prorated over the days of the billing period (daily: the monthly limit)
    """

    name: WindowName
    label: str
    edge: Callable[[int, int], str]
    to_date: str
    org_percent: str
    agent_percent: str
    when: str
    prorated_from: WindowName | None = None

    @property
    def start_helper(self) -> str:
        """Operation name of the helper holding the window's start (`<ns>:time:<this>`)."""
        return f"{self.label}_start"

    @property
    def limit_field(self) -> WindowName:
        return self.name


DAILY: Final = Window(
    name="daily",
    label="day",
    edge=day_start_expr,
    to_date="day_to_date",
    org_percent="budget_daily_used_percent",
    agent_percent="agent_budget_used_percent",
    when="today (UTC)",
    prorated_from="monthly",
)
MONTHLY: Final = Window(
    name="monthly",
    label="period",
    edge=period_start_expr,
    to_date="period_to_date",
    org_percent="budget_used_percent",
    agent_percent="agent_budget_monthly_used_percent",
    when="this period",
)
# Order matters: the daily window is the period's part (an org daily limit absent from the
# limits file is the monthly one prorated over the days of the billing period).
WINDOWS: Final = (DAILY, MONTHLY)
WINDOW_NAMES: Final[tuple[WindowName, ...]] = tuple(w.name for w in WINDOWS)


def window(name: str) -> Window:
    for w in WINDOWS:
        if w.name == name:
            return w
    raise KeyError(f"no window {name!r}; windows: {', '.join(WINDOW_NAMES)}")


# --- alert levels and names (contract section 6) ---------------------------------------------


@dataclass(frozen=True)
class Level:
    """A budget alert level: its limits.yaml threshold field and the severity it pages with."""

    name: str  # thresholds.<name> in limits.yaml; the `budget_level` label
    severity: str


LEVELS: Final = (
    Level("warning", "warning"),
    Level("critical", "critical"),
    Level("exhausted", "critical"),
)


def levels_with_thresholds(thresholds: object) -> list[tuple[Level, float]]:
    """Each level with its threshold, read from `thresholds.<level name>` (lowest first)."""
    return [(level, float(getattr(thresholds, level.name))) for level in LEVELS]


def inhibited_by(level: Level) -> tuple[Level, ...]:
    """The lower levels a firing `level` silences for the same agent and window."""
    index = LEVELS.index(level)
    return LEVELS[:index]


@dataclass(frozen=True)
class Alerts:
    """Every alert name for one namespace, and its runbook anchor."""

    ns: str

    @property
    def prefix(self) -> str:
        return alert_prefix(self.ns)

    def agent_budget(self, level: Level) -> str:
        return f"{self.prefix}AgentBudget{level.name.title()}"

    def org_budget(self, level: Level) -> str:
        return f"{self.prefix}Budget{level.name.title()}"

    @property
    def exhaustion_forecast(self) -> str:
        return f"{self.prefix}AgentBudgetExhaustionForecast"

    @property
    def telemetry_absent(self) -> str:
        return f"{self.prefix}BudgetTelemetryAbsent"

    # early warning (contract section 8)
    @property
    def org_forecast_overrun(self) -> str:
        return f"{self.prefix}BudgetForecastOverrun"

    @property
    def agent_forecast_overrun(self) -> str:
        return f"{self.prefix}AgentBudgetForecastOverrun"

    @property
    def org_burn_rate(self) -> str:
        return f"{self.prefix}BudgetBurnRateHigh"

    @property
    def agent_burn_rate(self) -> str:
        return f"{self.prefix}AgentBudgetBurnRateHigh"

    @property
    def spend_spike(self) -> str:
        return f"{self.prefix}AgentSpendSpike"

    # per-task cost and coverage (contract section 8)
    @property
    def task_over_budget(self) -> str:
        return f"{self.prefix}AgentTaskOverBudget"

    @property
    def coverage_low(self) -> str:
        return f"{self.prefix}BudgetCoverageLow"

    def per_task(self) -> tuple[str, ...]:
        return (self.task_over_budget, self.coverage_low)

    def early_warning(self) -> tuple[str, ...]:
        return (
            self.org_forecast_overrun,
            self.agent_forecast_overrun,
            self.org_burn_rate,
            self.agent_burn_rate,
            self.spend_spike,
        )

    def anchors(self) -> dict[str, str]:
        """alertname -> runbook anchor id (the alertname without the prefix, kebab-case)."""
        names = [
            name for level in LEVELS for name in (self.agent_budget(level), self.org_budget(level))
        ]
        names += [self.exhaustion_forecast, self.telemetry_absent, *self.early_warning()]
        names += self.per_task()
        return {name: _kebab(name.removeprefix(self.prefix)) for name in names}


def _kebab(camel: str) -> str:
    return "".join(f"-{ch.lower()}" if ch.isupper() else ch for ch in camel).lstrip("-")


# Origin of the early-warning helpers: empty until the series has the history it needs.
HISTORY_HELPER: Final = "early-warning helper rules, only once the history they need exists"

# Series of the pipeline's other parts that the pipeline-health dashboard reads.
EXTERNAL_SERIES: Final[Mapping[str, str]] = {
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


# Series names live in spec_series (for size); they are part of the spec and imported from here.
from .spec_series import Counter, Names  # noqa: E402

__all__ = ["Counter", "Names"]
