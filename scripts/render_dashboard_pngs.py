#!/usr/bin/env python3
"""Draw the budgetwatch dashboards to PNG without a Grafana: same panels, same queries.

Renders the dashboards from a limits file exactly as `budgetwatch render` does, runs every
panel's queries (variables filled in as Grafana would) against a Prometheus, and draws each
dashboard's grid with matplotlib: stats, gauges, bar gauges, time series and tables. The
README's pictures (docs/img/) are made by this script:

    .venv/bin/python scripts/render_dashboard_pngs.py --prometheus http://127.0.0.1:9090 \
        --limits limits.yaml --out docs/img

It prints each panel that had no data, and exits 1 if any query failed.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.patches import Wedge

from budgetwatch.dashboards import render_dashboards
from budgetwatch.dev.panel_queries import expand_variables
from budgetwatch.limits import load_limits

BACKGROUND = "#111217"
PANEL = "#181b1f"
TEXT = "#ccccdc"
MUTED = "#8e8e9a"
COLORS = {"green": "#73bf69", "yellow": "#fade2a", "orange": "#ff9830", "red": "#f2495c",
          "blue": "#5794f2"}  # fmt: skip
PALETTE = ["#73bf69", "#fade2a", "#5794f2", "#ff9830", "#f2495c", "#b877d9", "#8ab8ff",
           "#ffb357", "#96d98d", "#ca95e5"]  # fmt: skip
CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹", "KRW": "₩"}
GRID_ROW_INCHES = 0.36


class QueryError(RuntimeError):
    pass


@dataclass
class Series:
    labels: dict[str, str]
    times: list[float]
    values: list[float]
    # The field config of its query: the panel's defaults with the query's overrides (a
    # coverage ratio beside money); its table column, when the panel names one.
    config: dict[str, Any] = field(default_factory=dict)
    column: str = ""


@dataclass
class PanelResult:
    title: str
    series: list[tuple[str, Series]] = field(default_factory=list)  # (legend, series)


@dataclass
class Report:
    files: list[Path] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)  # "dashboard / panel" with no data
    failed: list[str] = field(default_factory=list)  # queries Prometheus refused


class Prometheus:
    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _get(self, path: str, params: Mapping[str, str]) -> Any:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as err:
            raise QueryError(f"{params.get('query')}: {err.code} {err.read()[:300]!r}") from None
        if body.get("status") != "success":
            raise QueryError(f"{params.get('query')}: {body}")
        return body["data"]["result"]

    def instant(self, expr: str, at: float) -> list[Series]:
        return [
            Series(r["metric"], [float(r["value"][0])], [float(r["value"][1])])
            for r in self._get("/api/v1/query", {"query": expr, "time": f"{at:.3f}"})
        ]

    def range(self, expr: str, start: float, end: float, step: int) -> list[Series]:
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step}s"}
        return [
            Series(
                r["metric"],
                [float(t) for t, _ in r["values"]],
                [float(v) for _, v in r["values"]],
            )
            for r in self._get("/api/v1/query_range", params)
        ]


def legend(template: str, labels: Mapping[str, str]) -> str:
    if template in ("", "__auto"):
        return ",".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "__name__") or "value"
    out = template
    for key, value in labels.items():
        out = out.replace("{{" + key + "}}", value)
    return out


def format_value(value: float, unit: str) -> str:
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if unit.startswith("currency"):
        code = unit.removeprefix("currency")
        symbol = CURRENCY_SYMBOLS.get(code)
        return f"{symbol}{value:,.2f}" if symbol else f"{value:,.2f} {code}"
    if unit.startswith("suffix:"):
        return f"{value:,.2f} {unit.removeprefix('suffix:').strip()}"
    if unit == "percent":
        return f"{value:.1f}%"
    if unit == "percentunit":
        return f"{value * 100:.1f}%"
    if unit == "s":
        for size, name in ((86400, "day"), (3600, "hour"), (60, "min")):
            if value >= size:
                return f"{value / size:.1f} {name}"
        if 0 < value < 1:
            return f"{value * 1000:.3g} ms"
        return f"{value:.0f} s"
    return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def value_mapping(value: float, defaults: Mapping[str, Any]) -> tuple[str, str] | None:
    """(text, colour) of a value mapping that matches `value`, as Grafana would show it."""
    for mapping in defaults.get("mappings", []):
        if mapping.get("type") != "value":
            continue
        for key, result in mapping.get("options", {}).items():
            if float(key) == value:
                return result.get("text", key), COLORS.get(result.get("color"), TEXT)
    return None


def threshold_color(value: float, defaults: Mapping[str, Any]) -> str:
    steps = defaults.get("thresholds", {}).get("steps", [])
    color = "green"
    for step in steps:
        if step.get("value") is None or value >= float(step["value"]):
            color = step["color"]
    return COLORS.get(color, color)


def field_config(panel: Mapping[str, Any], ref: str) -> tuple[dict[str, Any], str]:
    """The field config Grafana applies to a query's values, and its table column name: the
    panel's defaults, then the overrides matching the query (by refId, or by the column its
    value is renamed to in a table)."""
    field_cfg = panel.get("fieldConfig", {})
    config = dict(field_cfg.get("defaults", {}))
    config["custom"] = dict(config.get("custom", {}))
    column = ""
    for transformation in panel.get("transformations", []):
        column = (
            transformation.get("options", {}).get("renameByName", {}).get(f"Value #{ref}", column)
        )
    for override in field_cfg.get("overrides", []):
        matcher = override["matcher"]
        if matcher == {"id": "byFrameRefID", "options": ref} or (
            column and matcher == {"id": "byName", "options": column}
        ):
            for prop in override["properties"]:
                key, value = prop["id"], prop.get("value")
                if key.startswith("custom."):
                    config["custom"][key.removeprefix("custom.")] = value
                else:
                    config[key] = value
    return config, column


def run_panel(
    prometheus: Prometheus,
    panel: Mapping[str, Any],
    *,
    end: float,
    range_s: int,
    step_s: int,
    variables: Mapping[str, str],
) -> PanelResult:
    result = PanelResult(panel["title"])
    for target in panel.get("targets", []):
        expr = expand_variables(
            target["expr"],
            range_s=range_s,
            interval_s=step_s,
            rate_interval_s=max(4 * 15, step_s + 15),  # Grafana's, for a 15 s scrape interval
            variables=variables,
        )
        if target.get("instant"):
            found = prometheus.instant(expr, end)
        else:
            found = prometheus.range(expr, end - range_s, end, step_s)
        config, column = field_config(panel, target["refId"])
        for series in found:
            series.config, series.column = config, column
            result.series.append((legend(target.get("legendFormat", ""), series.labels), series))
    return result


def _style(ax: Axes, title: str) -> None:
    ax.set_facecolor(PANEL)
    ax.set_title(title, color=TEXT, fontsize=9, loc="left", pad=4)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.tick_params(colors=MUTED, labelsize=7)


def _no_data(ax: Axes, text: str) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.text(0.5, 0.45, text or "No data", ha="center", va="center", color=MUTED, fontsize=11,
            transform=ax.transAxes)  # fmt: skip


def draw_stat(
    ax: Axes, result: PanelResult, defaults: Mapping[str, Any], text_mode: str = "auto"
) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    items = result.series[:4]
    small = len(items) > 2
    for i, (name, series) in enumerate(items):
        value = series.values[-1]
        x = (i + 0.5) / len(items)
        if text_mode == "name":  # an info metric: its label is the news, not its value
            ax.text(x, 0.5, name, ha="center", va="center", fontsize=16, fontweight="bold",
                    color=COLORS["blue"], transform=ax.transAxes)  # fmt: skip
            continue
        config = series.config or defaults
        text = format_value(value, config.get("unit", ""))
        color = threshold_color(value, config)
        text, color = value_mapping(value, config) or (text, color)
        ax.text(x, 0.5, text, ha="center", va="center",
                fontsize=12 if small or len(text) > 10 else 20 if len(items) == 1 else 14,
                fontweight="bold",
                color=color, transform=ax.transAxes)  # fmt: skip
        ax.text(x, 0.18, name, ha="center", va="center", fontsize=6 if small else 8, color=MUTED,
                transform=ax.transAxes)  # fmt: skip


def draw_gauge(ax: Axes, result: PanelResult, defaults: Mapping[str, Any]) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal")
    ax.set_anchor("N")
    # The fullest first: with many agents, those nearest their limits matter.
    items = sorted(result.series, key=lambda item: item[1].values[-1], reverse=True)[:4]
    ax.set_xlim(0, 2.4 * len(items))
    ax.set_ylim(-0.6, 1.3)
    for i, (name, series) in enumerate(items):
        config = series.config or defaults
        top = float(config.get("max", 100))
        value = series.values[-1]
        cx = 1.2 + 2.4 * i
        ax.add_patch(Wedge((cx, 0), 1.0, 0, 180, width=0.25, color="#2c3235"))
        # Threshold band on the outer edge, as Grafana's threshold markers.
        steps = config.get("thresholds", {}).get("steps", [])
        for j, step in enumerate(steps):
            lo = 0.0 if step.get("value") is None else float(step["value"])
            hi = float(steps[j + 1]["value"]) if j + 1 < len(steps) else top
            a1, a0 = 180 - 180 * min(lo, top) / top, 180 - 180 * min(hi, top) / top
            ax.add_patch(Wedge((cx, 0), 1.08, a0, a1, width=0.06,
                               color=COLORS.get(step["color"], step["color"])))  # fmt: skip
        angle = 180 - 180 * max(0.0, min(value, top)) / top
        ax.add_patch(Wedge((cx, 0), 1.0, angle, 180, width=0.25,
                           color=threshold_color(value, config)))  # fmt: skip
        ax.text(cx, 0.12, format_value(value, config.get("unit", "")), ha="center",
                va="center", fontsize=14, fontweight="bold", color=TEXT)  # fmt: skip
        ax.text(cx, -0.35, name, ha="center", va="center", fontsize=8, color=MUTED)


def draw_bargauge(ax: Axes, result: PanelResult, defaults: Mapping[str, Any]) -> None:
    items = sorted(result.series, key=lambda item: item[1].values[-1], reverse=True)[:10]
    names = [name for name, _ in items][::-1]
    values = [series.values[-1] for _, series in items][::-1]
    configs = [series.config or defaults for _, series in items][::-1]
    biggest = max(values) * 1.1 if values else 1
    # Each bar on its own field's scale (a 0-1 coverage beside percents), drawn as a share.
    tops = [float(c.get("max", biggest)) or 1.0 for c in configs]
    rows = range(len(values))
    # Grafana puts each name above its bar: a thin bar, the name and value over it.
    ax.barh(rows, [1.0] * len(values), color="#2c3235", height=0.35, align="edge")
    colors = [threshold_color(v, c) for v, c in zip(values, configs, strict=True)]
    shares = [min(v, t) / t for v, t in zip(values, tops, strict=True)]
    ax.barh(rows, shares, color=colors, height=0.35, align="edge")
    for y, (name, value, config) in enumerate(zip(names, values, configs, strict=True)):
        ax.text(0, y + 0.45, name, va="bottom", ha="left", fontsize=7, color=TEXT)
        ax.text(1.0, y + 0.45, format_value(value, config.get("unit", "")), va="bottom",
                ha="right", fontsize=7, color=TEXT)  # fmt: skip
    ax.set_xlim(0, 1.0)
    ax.set_ylim(0, max(len(values), 1))
    ax.set_xticks([])
    ax.set_yticks([])


def draw_timeseries(
    ax: Axes,
    result: PanelResult,
    defaults: Mapping[str, Any],
    custom: Mapping[str, Any],
    span: tuple[float, float],
) -> None:
    unit = defaults.get("unit", "")
    stacked = custom.get("stacking", {}).get("mode") == "normal"
    bars = custom.get("drawStyle") == "bars"
    base: dict[float, float] = {}
    right: Axes | None = None  # series on the right axis (coverage beside spend)
    for i, (name, series) in enumerate(result.series[:10]):
        times = [datetime.fromtimestamp(t, UTC) for t in series.times]
        color = PALETTE[i % len(PALETTE)]
        if series.config.get("custom", {}).get("axisPlacement") == "right":
            if right is None:
                right = ax.twinx()
                right_unit = str(series.config.get("unit", ""))
                right.yaxis.set_major_formatter(
                    plt.FuncFormatter(lambda v, _, u=right_unit: format_value(v, u))
                )
                right.set_ylim(series.config.get("min", 0), series.config.get("max", 1))
                right.tick_params(colors=MUTED, labelsize=7)
            right.plot(times, series.values, color=color, linewidth=1, linestyle="--",
                       label=name)  # fmt: skip
        elif bars:
            width = (series.times[1] - series.times[0]) / 86400 * 0.8 if len(times) > 1 else 0.001
            ax.bar(times, series.values, width=width, color=color, label=name)
        elif stacked:
            bottom = [base.get(t, 0.0) for t in series.times]
            top = [b + v for b, v in zip(bottom, series.values, strict=True)]
            ax.fill_between(times, bottom, top, color=color, alpha=0.35, linewidth=0)
            ax.plot(times, top, color=color, linewidth=1, label=name)
            base.update(zip(series.times, top, strict=True))
        else:
            ax.plot(times, series.values, color=color, linewidth=1.2, label=name)
    if custom.get("thresholdsStyle", {}).get("mode") == "line":
        for step in defaults.get("thresholds", {}).get("steps", []):
            if step.get("value") is not None:
                ax.axhline(float(step["value"]), color=COLORS.get(step["color"]), linewidth=0.8,
                           linestyle="--")  # fmt: skip
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=3, maxticks=7, tz=UTC))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=UTC))
    ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: format_value(v, unit)))
    ax.set_xlim(*(datetime.fromtimestamp(t, UTC) for t in span))
    ax.set_ylim(bottom=0)
    ax.grid(color="#2c3235", linewidth=0.5)
    handles, names = ax.get_legend_handles_labels()
    if right is not None:  # one legend for both axes
        more = right.get_legend_handles_labels()
        handles, names = handles + more[0], names + more[1]
    if handles:
        ax.legend(handles, names, loc="upper left", fontsize=6, frameon=False, labelcolor=TEXT,
                  ncol=3)  # fmt: skip


def _table_rows(result: PanelResult) -> tuple[list[str], list[list[str]]]:
    """Columns and rows as Grafana shows them: the labels, then (queries merged on their
    labels) one column per named query value."""
    labels = sorted({k for _, s in result.series for k in s.labels if k != "__name__"})
    named = list(dict.fromkeys(s.column for _, s in result.series if s.column))
    if not named:
        return labels, [[s.labels.get(c, "") for c in labels] for _, s in result.series]
    merged: dict[tuple[str, ...], dict[str, str]] = {}
    for _, s in result.series:
        key = tuple(s.labels.get(c, "") for c in labels)
        cell = format_value(s.values[-1], s.config.get("unit", ""))
        merged.setdefault(key, {})[s.column] = cell
    rows = [[*key, *(cells.get(c, "") for c in named)] for key, cells in merged.items()]
    return labels + named, rows


def draw_table(ax: Axes, result: PanelResult, max_rows: int) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    columns, rows = _table_rows(result)
    widths = [max(len(c), *(len(r[i]) for r in rows)) + 3 for i, c in enumerate(columns)]

    def line(cells: Sequence[str]) -> str:
        return "".join(f"{cell:<{width}}" for cell, width in zip(cells, widths, strict=True))

    ax.text(0.01, 0.9, line(columns), color=TEXT, fontsize=7, family="monospace",
            fontweight="bold", va="top", transform=ax.transAxes)  # fmt: skip
    step = 0.8 / max(max_rows, 1)
    shown = rows if len(rows) <= max_rows else rows[: max_rows - 1]
    for i, row in enumerate(shown):
        ax.text(0.01, 0.9 - (i + 1) * step, line(row), color=TEXT, fontsize=7,
                family="monospace", va="top", transform=ax.transAxes)  # fmt: skip
    if len(shown) < len(rows):
        ax.text(0.01, 0.9 - max_rows * step, f"... and {len(rows) - len(shown)} more",
                color=MUTED, fontsize=7, va="top", transform=ax.transAxes)  # fmt: skip


def draw_dashboard(
    dashboard: Mapping[str, Any],
    results: Mapping[int, PanelResult],
    path: Path,
    subtitle: str,
    span: tuple[float, float],
) -> None:
    panels: Sequence[Mapping[str, Any]] = dashboard["panels"]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    height = rows * GRID_ROW_INCHES + 0.7
    fig = plt.figure(figsize=(16, height), facecolor=BACKGROUND)
    fig.text(0.01, 1 - 0.25 / height, dashboard["title"], color=TEXT, fontsize=14,
             fontweight="bold", va="top")  # fmt: skip
    fig.text(0.99, 1 - 0.25 / height, subtitle, color=MUTED, fontsize=8, va="top", ha="right")
    usable = (height - 0.6) / height
    for panel in panels:
        grid = panel["gridPos"]
        left, width = grid["x"] / 24 + 0.004, grid["w"] / 24 - 0.008
        top = usable * (1 - grid["y"] / rows)
        h = usable * grid["h"] / rows
        if panel["type"] == "row":
            fig.text(left, top - h / 2, panel["title"], color=TEXT, fontsize=11,
                     fontweight="bold", va="center")  # fmt: skip
            continue
        # Room for the title above, and for tick labels on charts.
        pad = 0.16 / height
        axis_room = 0.03 if panel["type"] == "timeseries" else 0.0
        ax = fig.add_axes((left + axis_room, top - h + pad, width - axis_room, h - 2 * pad))
        _style(ax, panel["title"])
        result = results[panel["id"]]
        defaults = panel.get("fieldConfig", {}).get("defaults", {})
        if not result.series:
            _no_data(ax, defaults.get("noValue", ""))
        elif panel["type"] == "stat":
            draw_stat(ax, result, defaults, panel.get("options", {}).get("textMode", "auto"))
        elif panel["type"] == "gauge":
            draw_gauge(ax, result, defaults)
        elif panel["type"] == "bargauge":
            draw_bargauge(ax, result, defaults)
        elif panel["type"] == "table":
            draw_table(ax, result, max_rows=int(grid["h"] * GRID_ROW_INCHES / 0.2) - 2)
        else:
            draw_timeseries(ax, result, defaults, defaults.get("custom", {}), span)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90, facecolor=BACKGROUND)
    plt.close(fig)


def render_pngs(
    prometheus_url: str,
    limits_path: Path,
    out_dir: Path,
    *,
    range_s: int = 3 * 3600,
    variables: Mapping[str, str] | None = None,
    end: float | None = None,
) -> Report:
    limits = load_limits(limits_path)
    prometheus = Prometheus(prometheus_url)
    end = end if end is not None else time.time()
    step_s = max(15, range_s // 240)
    values = {"agent": ".*", "provider": ".*", "model": ".*", **(variables or {})}
    report = Report()
    subtitle = (
        f"{datetime.fromtimestamp(end - range_s, UTC):%Y-%m-%d %H:%M} to "
        f"{datetime.fromtimestamp(end, UTC):%H:%M} UTC, from {limits_path.name}"
    )
    for name, text in render_dashboards(limits, limits_path.name).items():
        dashboard = json.loads(text)
        results: dict[int, PanelResult] = {}
        for panel in dashboard["panels"]:
            if panel["type"] == "row":
                continue
            try:
                results[panel["id"]] = run_panel(
                    prometheus, panel, end=end, range_s=range_s, step_s=step_s, variables=values
                )
            except QueryError as err:
                report.failed.append(f"{name} / {panel['title']}: {err}")
                results[panel["id"]] = PanelResult(panel["title"])
            if not results[panel["id"]].series:
                report.empty.append(f"{name} / {panel['title']}")
        path = out_dir / name.replace(".json", ".png")
        draw_dashboard(dashboard, results, path, subtitle, (end - range_s, end))
        report.files.append(path)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prometheus", required=True, help="Prometheus base URL")
    parser.add_argument("--limits", default="limits.yaml", type=Path)
    parser.add_argument("--out", default=Path("docs/img"), type=Path)
    parser.add_argument("--range", dest="range_s", default=3 * 3600, type=int,
                        help="time range of the graphs in seconds (default 3 h)")  # fmt: skip
    parser.add_argument("--var", action="append", default=[], metavar="NAME=REGEX",
                        help="a dashboard variable, e.g. agent=cto (default: all)")  # fmt: skip
    args = parser.parse_args(argv)
    variables = dict(item.split("=", 1) for item in args.var)
    report = render_pngs(
        args.prometheus, args.limits, args.out, range_s=args.range_s, variables=variables
    )
    for path in report.files:
        print(f"wrote {path}")
    for item in report.empty:
        print(f"no data: {item}", file=sys.stderr)
    for item in report.failed:
        print(f"query failed: {item}", file=sys.stderr)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
