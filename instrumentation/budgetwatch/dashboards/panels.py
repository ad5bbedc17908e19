"""What a dashboard is made of, independent of Grafana's SDK: panels, queries, rows, and the
selectors, series names and panel shapes the dashboard modules share (spend with coverage
beside it, percent gauges, the cost-per-task queries).

A dashboard module (overview.py, agent_detail.py, pipeline_health.py) returns a
`DashboardDef`; grafana.py turns it into Grafana's JSON model.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from ..spec import AGENT, MODEL, PROVIDER, WINDOW_LABEL, Names, Window

PanelKind = Literal["stat", "gauge", "timeseries", "bargauge", "table"]
UnitKind = Literal["currency", "percent", "seconds", "count", "ratio", "rate"]
Variable = Literal["agent", "provider", "model"]

# Dashboard variable -> the label it selects on.
VARIABLE_LABELS: dict[Variable, str] = {"agent": AGENT, "provider": PROVIDER, "model": MODEL}


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""
    instant: bool = False
    table: bool = False
    # The unit of this query's values when it differs from the panel's (a count beside money).
    unit: UnitKind | None = None
    # A coverage figure (0-1): shown as a ratio, red under the coverage alert's floor, on the
    # right axis of a graph and never stacked with spend.
    coverage: bool = False
    column: str = ""  # in a table, the header of this query's value column


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
    variables: Sequence[Variable] = ()
    tags: Sequence[str] = field(default_factory=tuple)


def iter_queries(definition: DashboardDef) -> Iterator[tuple[PanelDef, Query]]:
    for item in definition.items:
        if isinstance(item, PanelDef):
            for query in item.queries:
                yield item, query


def known_series(namespace: str) -> dict[str, str]:
    """Every series a panel may query (from the bundle spec) -> what produces it."""
    return Names(namespace).origins()


# --- selectors and legends ----------------------------------------------------------------


def agent_sel(extra: str = "") -> str:
    """`{<agent>=~"$agent"[, extra]}`: the agents picked in the dashboard's variable."""
    return f'{{{AGENT}=~"$agent"' + (", " + extra if extra else "") + "}"


def window_matcher(window: Window) -> str:
    """`{window="<name>"}`: the series of one window (the partial flag's `window` label)."""
    return f'{{{WINDOW_LABEL}="{window.name}"}}'


def window_sel(window: Window) -> str:
    """The selected agents' series of one window."""
    return agent_sel(f'{WINDOW_LABEL}="{window.name}"')


def raw_sel() -> str:
    """The selected agents, providers and models, on the raw counters."""
    return "{" + ", ".join(f'{VARIABLE_LABELS[v]}=~"${v}"' for v in VARIABLE_LABELS) + "}"


def legend(*labels: str, suffix: str = "") -> str:
    """`{{label}} {{label}}...` (and a suffix): a legend showing those labels' values."""
    text = " ".join(f"{{{{{label}}}}}" for label in labels)
    return f"{text} {suffix}" if suffix else text


AGENT_LEGEND = legend(AGENT)
PROVIDER_MODEL = f"{PROVIDER}, {MODEL}"


# --- budget panels: spend with its coverage beside it ---------------------------------------

COVERAGE_NOTE = (
    "Coverage beside it: the share of the last hour's LLM calls whose cost was known (priced "
    "/ priced + unpriced); red below the limits file's coverage.min_percent, where the spend "
    "shown under-counts. No coverage value: no priced or unpriced call in the last hour."
)


def org_coverage(n: Names) -> Query:
    """The organisation's coverage, to show beside an organisation figure."""
    return Query(n.org_coverage, "coverage", coverage=True)


def agent_coverage(n: Names, sel: str = "") -> Query:
    """Each agent's coverage (`sel`: which agents), to show beside per-agent figures."""
    return Query(f"{n.agent_coverage}{sel}", legend(AGENT, suffix="coverage"), coverage=True)


def with_coverage(panel: PanelDef, coverage: Query) -> PanelDef:
    """A budget panel with coverage beside its spend, so that a 0 from unpriced calls never
    reads as "within budget". The coverage query runs like the panel's others (instant or
    over the range, as a table or not)."""
    first = panel.queries[0]
    query = replace(coverage, instant=first.instant, table=first.table)
    if first.table:
        query = replace(query, column="coverage")
    description = f"{panel.description} {COVERAGE_NOTE}"
    return replace(panel, queries=[*panel.queries, query], description=description)


def spend_stat(
    title: str, description: str, spent: Query, limit: Query, coverage: Query, width: int
) -> PanelDef:
    """Spend, the limit in force and the coverage of that spend: one stat."""
    panel = PanelDef("stat", title, description, [spent, limit], unit="currency", width=width)
    return with_coverage(panel, coverage)


def percent_gauge(
    title: str, description: str, percent: Query, coverage: Query, no_value: str, width: int
) -> PanelDef:
    """Percent of a limit, coloured by the limits file's thresholds, with its coverage."""
    panel = PanelDef(
        "gauge",
        title,
        description,
        [percent],
        unit="percent",
        width=width,
        budget_thresholds=True,
        no_value=no_value,
    )
    return with_coverage(panel, coverage)


# --- cost per task (a native histogram) -----------------------------------------------------

# (name, quantile): the distribution panels show. Quantile 1 is the upper edge of the highest
# bucket holding a task: the most expensive task cost at most that (docs/dashboards.md).
TASK_COST_QUANTILES: tuple[tuple[str, float], ...] = (
    ("median", 0.5),
    ("p90", 0.9),
    ("max bucket", 1.0),
)


def task_cost_over_range(n: Names, sel: str = "") -> str:
    """Per agent: the histogram of the costs of the tasks finished in the dashboard's range."""
    return f"sum by ({AGENT}) (increase({n.task_cost}{sel}[$__range]))"


def task_cost_queries(n: Names, sel: str = "", *, table: bool = False) -> list[Query]:
    """Median, p90 and max bucket of each agent's task costs over the dashboard's range
    (`>= 0` drops agents without a task finished in the range: their quantile is NaN)."""
    histogram = task_cost_over_range(n, sel)
    return [
        Query(
            f"histogram_quantile({q:g}, {histogram}) >= 0",
            legend(AGENT, suffix=name),
            instant=True,
            table=table,
            column=name,
        )
        for name, q in TASK_COST_QUANTILES
    ]
