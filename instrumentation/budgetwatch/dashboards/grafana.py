"""Grafana glue: a `DashboardDef` to Grafana's JSON model, through the foundation SDK.

The only module that imports Grafana's SDK, so every field is one Grafana's own schema knows.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

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

from ..limits import Limits
from ..spec import AGENT, Names
from .panels import VARIABLE_LABELS, DashboardDef, PanelDef, Query, Row, UnitKind

DATASOURCE_VARIABLE = "datasource"
DASHBOARD_TAG = "budgetwatch"
# Grafana's built-in currency units (grafana-foundation-sdk `units`); others get a suffix.
GRAFANA_CURRENCIES = frozenset(
    {"USD", "GBP", "EUR", "JPY", "RUB", "UAH", "BRL", "DKK", "ISK", "NOK", "SEK", "CZK", "CHF",
     "PLN", "BTC", "ZAR", "INR", "KRW"}
)  # fmt: skip


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


def _coverage_thresholds(limits: Limits) -> dict[str, Any]:
    """Red under the coverage alert's floor (`coverage.min_percent`), green from it."""
    return {
        "mode": "absolute",
        "steps": [
            {"value": None, "color": "red"},
            {"value": limits.coverage.min_ratio, "color": "green"},
        ],
    }


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


def _gauge_max(limits: Limits) -> float:
    # The scale reaches past the exhausted threshold so that an overrun still shows.
    return max(100.0, limits.thresholds.exhausted) * 1.2


def _stat(spec: PanelDef, limits: Limits) -> Any:
    panel = (
        stat_builder.Panel()
        .reduce_options(_last_value())
        .graph_mode(common_model.BigValueGraphMode.NONE)
    )
    if spec.show_name:
        panel = panel.text_mode(common_model.BigValueTextMode.NAME)
    return panel


def _gauge(spec: PanelDef, limits: Limits) -> Any:
    return (
        gauge_builder.Panel()
        .reduce_options(_last_value())
        .min(0)
        .max(_gauge_max(limits))
        .show_threshold_markers(True)
    )


def _bargauge(spec: PanelDef, limits: Limits) -> Any:
    panel = (
        bargauge_builder.Panel()
        .reduce_options(_last_value())
        .display_mode(common_model.BarGaugeDisplayMode.GRADIENT)
        .orientation(common_model.VizOrientation.HORIZONTAL)
        .min(0)
    )
    if spec.budget_thresholds:
        panel = panel.max(_gauge_max(limits))
    return panel


def _ref(index: int) -> str:
    return chr(ord("A") + index)


def _table(spec: PanelDef, limits: Limits) -> Any:
    panel = table_builder.Panel()
    if not any(q.column for q in spec.queries):
        # One query: its labels are the columns.
        return panel.with_transformation(
            dash_model.DataTransformerConfig(
                id_val="organize",
                options={"excludeByName": {"Time": True, "Value": True}},
            )
        )
    # Several queries: one row per label set (an agent), one named column per query's value.
    renames = {f"Value #{_ref(i)}": q.column for i, q in enumerate(spec.queries) if q.column}
    return panel.with_transformation(
        dash_model.DataTransformerConfig(id_val="merge", options={})
    ).with_transformation(
        dash_model.DataTransformerConfig(
            id_val="organize",
            options={"excludeByName": {"Time": True}, "renameByName": renames},
        )
    )


def _timeseries(spec: PanelDef, limits: Limits) -> Any:
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
    return panel


_VISUALS = {
    "stat": _stat,
    "gauge": _gauge,
    "bargauge": _bargauge,
    "table": _table,
    "timeseries": _timeseries,
}


def _value_mappings(spec: PanelDef) -> list[Any]:
    texts = list(spec.value_texts)
    if spec.zero_text:
        texts.append(("0", spec.zero_text, "red"))
    if not texts:
        return []
    options = {
        value: dash_model.ValueMappingResult(text=text, color=colour)
        for value, text, colour in texts
    }
    return [dash_model.ValueMap(options=options)]


def _agent_link(namespace: str) -> Any:
    """A data link from an agent's value to the agent detail dashboard for that agent."""
    detail = dashboard_uid(namespace, "agent-detail")
    field = f"${{__field.labels.{AGENT}}}"
    return (
        dash_builder.DashboardLink(f"Agent detail for {field}")
        .type(dash_model.DashboardLinkType.LINK)
        .url(f"/d/{detail}?var-agent={field}&${{datasource:queryparam}}&${{__url_time_range}}")
    )


def _coverage_properties(spec: PanelDef, limits: Limits) -> list[dash_model.DynamicConfigValue]:
    """A coverage value: a 0-1 ratio, red under the floor; in a graph on its own right axis,
    dashed, coloured by value, never stacked with spend nor drawn as bars."""
    props = {
        "unit": "percentunit",
        "min": 0,
        "max": 1,
        "decimals": 1,
        "thresholds": _coverage_thresholds(limits),
        "color": {"mode": "thresholds"},
        "mappings": [],  # the panel's value texts are for its own figures, not for coverage
    }
    if spec.kind == "timeseries":
        props |= {
            "custom.axisPlacement": "right",
            "custom.drawStyle": "line",
            "custom.fillOpacity": 0,
            "custom.gradientMode": "scheme",
            "custom.lineStyle": {"fill": "dash", "dash": [10, 10]},
            "custom.stacking": {"mode": "none", "group": "coverage"},
            "custom.thresholdsStyle": {"mode": "off"},
        }
    if spec.kind == "table":
        props["custom.cellOptions"] = {"type": "color-text"}
    return [dash_model.DynamicConfigValue(id_val=k, value=v) for k, v in props.items()]


def _overrides(panel: Any, spec: PanelDef, limits: Limits) -> Any:
    """Per-query units and coverage styling (by column name in a table, by query elsewhere)."""
    for index, query in enumerate(spec.queries):
        if query.coverage:
            props = _coverage_properties(spec, limits)
        elif query.unit is not None:
            unit = _unit(query.unit, limits.currency)
            props = [dash_model.DynamicConfigValue(id_val="unit", value=unit)]
            if query.unit == "count":
                # Whole tasks: increase() over the range extrapolates (2 tasks may read 2.07).
                props.append(dash_model.DynamicConfigValue(id_val="decimals", value=0))
        else:
            continue
        if spec.kind == "table" and query.column:
            panel = panel.override_by_name(query.column, props)
        else:
            panel = panel.override_by_query(_ref(index), props)
    return panel


def _panel(spec: PanelDef, limits: Limits) -> Any:
    thresholds = _budget_thresholds(limits) if spec.budget_thresholds else _plain_thresholds()
    panel = (
        _VISUALS[spec.kind](spec, limits)
        .title(spec.title)
        .description(spec.description)
        .datasource(_DS)
        .unit(_unit(spec.unit, limits.currency))
        .thresholds(thresholds)
        .span(spec.width)
        .height(spec.height)
    )
    if spec.no_value:
        panel = panel.no_value(spec.no_value)
    mappings = _value_mappings(spec)
    if mappings:
        panel = panel.mappings(mappings)
    if spec.agent_link:
        panel = panel.data_links([_agent_link(limits.namespace)])
    panel = _overrides(panel, spec, limits)
    for index, query in enumerate(spec.queries):
        panel = panel.with_target(_target(query, _ref(index)))
    return panel


def _variables(definition: DashboardDef, ns: str) -> list[Any]:
    """The data source, then each of the dashboard's variables (agent, provider, model), each
    one's values narrowed by the variables before it."""
    variables: list[Any] = [
        dash_builder.DatasourceVariable(DATASOURCE_VARIABLE).label("Data source").type("prometheus")
    ]
    matchers: list[str] = []
    for name in definition.variables:
        label = VARIABLE_LABELS[name]
        selector = "{" + ", ".join(matchers) + "}" if matchers else ""
        variables.append(
            dash_builder.QueryVariable(name)
            .label(name.capitalize())
            .datasource(_DS)
            .query(f"label_values({Names(ns).cost_total}{selector}, {label})")
            .refresh(dash_model.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(dash_model.VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            # Regex matchers (=~) take the values; "All" must match every value.
            .all_value(".*")
        )
        matchers.append(f'{label}=~"${name}"')
    return variables


def build_dashboard(definition: DashboardDef, limits: Limits, source: str) -> dict[str, Any]:
    """The dashboard as Grafana's JSON model (a dict)."""
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
