"""Grafana dashboards from the limits file: budget overview, agent detail, pipeline health.

One module per dashboard (overview, agent_detail, pipeline_health), each returning a
`DashboardDef` built from the shared panel model and selectors (panels); grafana turns a
definition into Grafana's JSON model with the foundation SDK. Panels query the series the
recording rules publish (contract section 5), so a dashboard and an alert always show the same
number; raw series appear only where no recorded one exists (cost by provider and model,
tokens, calls, the pipeline's own health). Every series name comes from the bundle spec
(budgetwatch.spec), which also lists what a panel may query (`known_series`).

Imported only by the CLI's `render`: `import budgetwatch` never pulls in the SDK.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from ..limits import Limits
from .agent_detail import agent_def
from .grafana import (
    GRAFANA_CURRENCIES,
    build_dashboard,
    currency_unit,
    dashboard_uid,
)
from .overview import overview_def
from .panels import DashboardDef, PanelDef, Query, Row, iter_queries, known_series
from .pipeline_health import pipeline_def

DASHBOARDS: Sequence[Callable[[Limits], DashboardDef]] = (overview_def, agent_def, pipeline_def)


def dashboard_defs(limits: Limits) -> list[DashboardDef]:
    return [make(limits) for make in DASHBOARDS]


def render_dashboards(limits: Limits, source: str) -> dict[str, str]:
    """File name -> dashboard JSON text, one per dashboard, stable across runs."""
    files: dict[str, str] = {}
    for definition in dashboard_defs(limits):
        model = build_dashboard(definition, limits, source)
        files[f"budget-{definition.name}.json"] = json.dumps(model, indent=2) + "\n"
    return files


__all__ = [
    "DASHBOARDS",
    "GRAFANA_CURRENCIES",
    "DashboardDef",
    "PanelDef",
    "Query",
    "Row",
    "build_dashboard",
    "currency_unit",
    "dashboard_defs",
    "dashboard_uid",
    "iter_queries",
    "known_series",
    "render_dashboards",
]
