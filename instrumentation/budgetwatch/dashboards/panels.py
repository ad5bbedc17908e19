"""What a dashboard is made of, independent of Grafana's SDK: panels, queries, rows, and the
selectors and series names the dashboard modules share.

A dashboard module (overview.py, agent_detail.py, pipeline_health.py) returns a
`DashboardDef`; grafana.py turns it into Grafana's JSON model.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
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
