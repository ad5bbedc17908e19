"""Every query of every shipped dashboard, run against a real pipeline holding a known ledger.

App (BudgetTelemetry in a real process) -> OTLP -> our collector -> Prometheus 3 with the rules
rendered from LIMITS, scraping the collector's and its own telemetry like the shipped
alerts/prometheus.yml. The dashboards are rendered from the same limits file. Each panel query,
with its Grafana variables filled in, must parse, return data, and the key panels must show
the ledger's numbers.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tests.support.pipeline import App, start_app
from tests.support.promql_scan import series_used

from budgetwatch import spec
from budgetwatch.dashboards import known_series, render_dashboards
from budgetwatch.dev.panel_queries import expand_variables
from budgetwatch.dev.stack import (
    Collector,
    Prometheus,
    free_port,
    http_get,
    prometheus_config,
    render_rules,
    start_collector,
    start_prometheus,
)
from budgetwatch.limits import load_limits

LIMITS = """\
apiVersion: budgetwatch/v1
kind: BudgetLimits
namespace: synthorg
currency: EUR
billing:
  reset_day: 1
thresholds:
  warning: 50
  critical: 80
  exhausted: 100
revisions:
  - revision: 1
    effective_from: 2026-01-01T00:00:00Z
    org: {monthly: 100, daily: 5}
    agent_defaults: {daily: 1}
  - revision: 2
    effective_from: 2026-06-01T00:00:00Z
    org: {monthly: 400, daily: 40}
    agent_defaults: {daily: 10, per_task: 2}
    agents:
      cto: {daily: 20, monthly: 300, per_task: 3}
      intern: {daily: 2}
      auditor: {daily: null}
"""

# (agent, cost, provider, model, input tokens, output tokens); binary fractions sum exactly.
COSTS = [
    ("cto", 4.0, "anthropic", "claude-sonnet-4", 1000, 200),
    ("cto", 2.0, "openai", "gpt-5", 500, 100),
    ("intern", 1.5, "openai", "gpt-5-mini", 300, 30),
    ("auditor", 0.5, "anthropic", "claude-opus-4", 100, 10),
    ("writer", 12.0, "anthropic", "claude-opus-4", 4000, 800),
]
LATER_COSTS = [("cto", 1.0, "anthropic", "claude-sonnet-4", 250, 50)]
# cto's first two costs belong to tasks t1 (4.0) and t2 (2.0), which complete below: the
# per-task cost histogram holds them; t1 is over cto's per-task limit of 3.
TASK_IDS = {0: "t1", 1: "t2"}  # index in COSTS -> task_id
TASKS = [
    ("cto", "completed", "t1"),
    ("cto", "completed", "t2"),
    ("cto", "failed", None),
    ("cto", "in_progress", None),
    ("writer", "completed", None),
    (None, "created", None),
    (None, "created", None),
]
CALLS = [("cto", "failed"), ("intern", "unpriced")]

ORG_TODAY = 21.0  # 7 (cto) + 1.5 + 0.5 + 12
AGENT_TODAY = {"cto": 7.0, "intern": 1.5, "auditor": 0.5, "writer": 12.0}
AGENT_DAILY_PERCENT = {"cto": 35.0, "intern": 75.0, "writer": 120.0}  # auditor is exempt
TASKS_TODAY = {"completed": 3.0, "failed": 1.0, "in_progress": 1.0, "created": 2.0}

RANGE_S = 300
STEP_S = 5
RATE_INTERVAL_S = 60


@dataclass
class Stack:
    prometheus: Prometheus
    collector: Collector
    app: App
    dashboards: dict[str, dict[str, Any]]
    namespace: str


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def _record_costs(
    app: App, rows: list[tuple[str, float, str, str, int, int]], task_ids: dict[int, str]
) -> None:
    for index, (agent, cost, provider, model, tokens_in, tokens_out) in enumerate(rows):
        app.cost(
            agent,
            cost,
            provider=provider,
            model=model,
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            task_id=task_ids.get(index),
        )


def _wait(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except RuntimeError as err:  # Prometheus still loading rules
            last = err
        time.sleep(0.5)
    raise TimeoutError(f"{what}: still {last!r} after {timeout}s")


def start_stack(workdir: Path, limits_text: str = LIMITS) -> Iterator[Stack]:
    """The pipeline with the ledger recorded; a generator so that callers stop it all."""
    now = datetime.now(UTC)
    if now.hour == 23 and now.minute >= 55:
        pytest.skip("too close to 00:00 UTC: the day-to-date figures would reset mid-test")
    limits_path = workdir / "limits-dashboards.yaml"
    limits_path.write_text(limits_text)
    limits = load_limits(limits_path)
    rules = render_rules(limits_path, workdir / "rules", "1s")
    prom_port, collector_metrics = free_port(), free_port()
    prometheus = start_prometheus(
        workdir / "prometheus",
        prometheus_config(
            rule_files=rules,
            scrape_targets={
                "otelcol": f"127.0.0.1:{collector_metrics}",
                "prometheus": f"127.0.0.1:{prom_port}",
            },
        ),
        port=prom_port,
    )
    collector: Collector | None = None
    app: App | None = None
    try:
        collector = start_collector(
            workdir / "otelcol",
            f"{prometheus.url}/api/v1/write",
            env={"BUDGETWATCH_COLLECTOR_METRICS_PORT": str(collector_metrics)},
        )
        app = start_app(workdir / "app", collector.otlp_http, export_interval_s=0.5)
        _record_costs(app, COSTS, TASK_IDS)
        for agent, status, task_id in TASKS:
            app.task(agent, status, task_id)
        for agent, outcome in CALLS:
            app.send("call", agent=agent, outcome=outcome)
        app.cost("cto", -1.0)  # dropped by the instrumentation: feeds the dropped-events panel
        app.flush()
        # A second batch a few seconds later, so that rate() over the counters has two points.
        time.sleep(3)
        _record_costs(app, LATER_COSTS, {})
        app.flush()
        ns = limits.namespace
        _wait(
            lambda: _close(_single(prometheus, f"{ns}_cost_day_to_date"), ORG_TODAY),
            90,
            f"{ns}_cost_day_to_date == {ORG_TODAY}",
        )
        _wait(lambda: prometheus.query('ALERTS{gen_ai_agent_id="writer"}'), 60, "alerts")
        _wait(
            lambda: (
                prometheus.query("otelcol_exporter_sent_metric_points")
                and prometheus.query("prometheus_rule_evaluation_failures_total")
            ),
            60,
            "the collector's and Prometheus's own metrics",
        )
        time.sleep(3)  # a few more scrapes, so rates over them have points
        dashboards = {
            name: json.loads(text) for name, text in render_dashboards(limits, "x").items()
        }
        yield Stack(prometheus, collector, app, dashboards, ns)
    finally:
        if app is not None:
            app.kill()
        if collector is not None:
            collector.server.stop()
        prometheus.server.stop()


def _single(prometheus: Prometheus, promql: str) -> float:
    result = prometheus.query(promql)
    assert len(result) == 1, f"{promql}: {result}"
    return float(result[0]["value"][1])


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from start_stack(tmp_path_factory.mktemp("dashboards"))


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def run_target(
    prometheus: Prometheus, target: dict[str, Any], variables: dict[str, str]
) -> list[dict[str, Any]]:
    """A panel target as Grafana would run it over the last RANGE_S seconds."""
    expr = expand_variables(
        target["expr"],
        range_s=RANGE_S,
        interval_s=STEP_S,
        rate_interval_s=RATE_INTERVAL_S,
        variables=variables,
    )
    now = time.time()
    if target.get("instant"):
        return prometheus.query(expr, at=now)
    result: list[dict[str, Any]] = prometheus.api(
        "/api/v1/query_range",
        query=expr,
        start=f"{now - RANGE_S:.3f}",
        end=f"{now:.3f}",
        step=f"{STEP_S}s",
    )["result"]
    return result


ALL = {"agent": ".*", "provider": ".*", "model": ".*"}

# Series that exist "only once" something happened (spec.Names.origins): early-warning series
# need hours or days of history (docs/rules.md, "Early warning"), per-task series tasks with a
# task_id and a per_task limit. This stack lives for minutes and its ledger has no such task,
# so queries of them may be empty here; they must still parse. The promtool tests
# (alerts/tests/*.yml) check their values.
MAY_BE_EMPTY = {name for name, origin in known_series("synthorg").items() if "only once" in origin}


def test_every_panel_query_parses_and_returns_data(stack: Stack) -> None:
    empty: list[str] = []
    count = 0
    for file, dashboard in stack.dashboards.items():
        for panel in _panels(dashboard):
            for target in panel["targets"]:
                count += 1
                result = run_target(stack.prometheus, target, ALL)  # raises on a parse error
                if not result and not series_used(target["expr"]) & MAY_BE_EMPTY:
                    empty.append(f"{file} / {panel['title']} / {target['expr']}")
    assert count >= 30, f"only {count} queries found: is the walk over panels broken?"
    assert not empty, "queries with no data:\n" + "\n".join(empty)


def test_every_variable_query_lists_the_ledger(stack: Stack) -> None:
    checked = 0
    for dashboard in stack.dashboards.values():
        for variable in dashboard["templating"]["list"]:
            if variable["type"] != "query":
                continue
            query = variable["query"]
            inner = query.removeprefix("label_values(").removesuffix(")")
            selector, label = (part.strip() for part in inner.rsplit(",", 1))
            match = expand_variables(
                selector, range_s=RANGE_S, interval_s=STEP_S, rate_interval_s=60, variables=ALL
            )
            status, body = http_get(
                f"{stack.prometheus.url}/api/v1/label/{label}/values?"
                + urllib.parse.urlencode({"match[]": match})
            )
            assert status == 200, body
            values = set(json.loads(body)["data"])
            expected = {
                "gen_ai_agent_id": set(AGENT_TODAY),
                "gen_ai_provider_name": {"anthropic", "openai"},
                "gen_ai_request_model": {c[3] for c in COSTS},
            }[label]
            assert expected <= values, f"{variable['name']}: {values}"
            checked += 1
    assert checked == 3


def test_every_series_a_panel_uses_exists(stack: Stack) -> None:
    """The series list of the bundle spec against what the pipeline really produced."""
    known = known_series(stack.namespace)
    used: set[str] = set()
    for dashboard in stack.dashboards.values():
        for panel in _panels(dashboard):
            for target in panel["targets"]:
                used |= series_used(target["expr"])
    assert used <= known.keys()
    missing = [
        name
        for name in sorted(used)
        if "only" not in known[name] and not stack.prometheus.query(f"count({name})")
    ]
    assert not missing, f"series the dashboards query but the pipeline never produced: {missing}"
    dropped = f"{stack.namespace}_telemetry_dropped_total"
    assert stack.prometheus.query(dropped), "the ledger's dropped event never arrived"


def _selector_names(node: Any) -> set[str]:
    """Metric names in a Prometheus /api/v1/parse_query syntax tree."""
    names: set[str] = set()
    if isinstance(node, dict):
        if node.get("type") in ("vectorSelector", "matrixSelector") and node.get("name"):
            names.add(node["name"])
        for value in node.values():
            names |= _selector_names(value)
    elif isinstance(node, list):
        for value in node:
            names |= _selector_names(value)
    return names


def test_series_list_agrees_with_prometheus_parser(stack: Stack) -> None:
    """The tests' series scanner finds what PromQL's own parser finds."""
    checked = 0
    for dashboard in stack.dashboards.values():
        for panel in _panels(dashboard):
            for target in panel["targets"]:
                expr = expand_variables(
                    target["expr"], range_s=300, interval_s=5, rate_interval_s=60, variables=ALL
                )
                tree = stack.prometheus.api("/api/v1/parse_query", query=expr)
                assert _selector_names(tree) == series_used(target["expr"]), expr
                checked += 1
    assert checked >= 30


def _panel(stack: Stack, file: str, title: str) -> dict[str, Any]:
    for panel in _panels(stack.dashboards[file]):
        if panel["title"] == title:
            return panel
    raise AssertionError(f"no panel {title!r} in {file}")


def _values(
    stack: Stack, file: str, title: str, label: str, variables: dict[str, str] = ALL, ref: str = "A"
) -> dict[str, float]:
    panel = _panel(stack, file, title)
    target = next(t for t in panel["targets"] if t["refId"] == ref)
    out: dict[str, float] = {}
    for series in run_target(stack.prometheus, target, variables):
        value = series["value"] if "value" in series else series["values"][-1]
        out[series["metric"].get(label, "")] = float(value[1])
    return out


def test_overview_org_percent_panels_show_the_ledger(stack: Stack) -> None:
    daily = _values(stack, "budget-overview.json", "Daily budget used", "")
    period = _values(stack, "budget-overview.json", "Billing period budget used", "")
    assert _close(daily[""], ORG_TODAY / 40 * 100), daily  # revision 2's org daily limit
    # Every cost of the ledger was recorded today, so the period so far holds the same spend.
    assert _close(period[""], ORG_TODAY / 400 * 100), period
    spend = _panel(stack, "budget-overview.json", "Spend today")
    spent_and_limit = spend["targets"][:2]  # then coverage, checked below
    values = [float(run_target(stack.prometheus, t, ALL)[0]["value"][1]) for t in spent_and_limit]
    assert _close(values[0], ORG_TODAY) and _close(values[1], 40.0), values
    revision = _values(stack, "budget-overview.json", "Limits revision in force", "revision")
    assert list(revision) == ["2"], revision


def test_overview_agent_panels_show_the_ledger(stack: Stack) -> None:
    today = _values(stack, "budget-overview.json", "Spend today by agent", "gen_ai_agent_id")
    for agent, spent in AGENT_TODAY.items():
        assert _close(today[agent], spent), (agent, today)
    top = _values(
        stack, "budget-overview.json", "Top agents by daily budget used", "gen_ai_agent_id"
    )
    assert set(top) == set(AGENT_DAILY_PERCENT), top  # the exempt auditor is not listed
    for agent, percent in AGENT_DAILY_PERCENT.items():
        assert _close(top[agent], percent), (agent, top)
    alerts = _values(stack, "budget-overview.json", "Budget alerts", "gen_ai_agent_id")
    assert "writer" in alerts, alerts  # 120% of its daily limit


def test_agent_detail_filters_by_agent(stack: Stack) -> None:
    cto = {**ALL, "agent": "cto"}
    file = "budget-agent-detail.json"
    spent = _values(stack, file, "Spend today", "gen_ai_agent_id", cto)
    assert spent.keys() == {"cto"} and _close(spent["cto"], 7.0), spent
    percent = _values(stack, file, "Daily budget used", "gen_ai_agent_id", cto)
    assert _close(percent["cto"], 35.0), percent
    monthly = _values(stack, file, "Billing period budget used", "gen_ai_agent_id", cto)
    assert _close(monthly["cto"], 7.0 / 300 * 100), monthly
    tasks = _values(stack, file, "Tasks today by status", "synthorg_task_status", cto)
    assert tasks == {"completed": 2.0, "failed": 1.0, "in_progress": 1.0}, tasks
    per_task = _values(stack, file, "Cost per completed task today", "", cto)
    assert _close(per_task[""], 3.5), per_task
    failure = _values(stack, file, "Task failure ratio today", "", cto)
    assert _close(failure[""], 1 / 3), failure


def test_agent_detail_with_several_agents(stack: Stack) -> None:
    # Grafana puts a multi-value selection into a regex matcher as (a|b).
    two = {**ALL, "agent": "(cto|intern)"}
    file = "budget-agent-detail.json"
    spent = _values(stack, file, "Spend today", "gen_ai_agent_id", two)
    assert spent == {"cto": 7.0, "intern": 1.5}, spent
    percent = _values(stack, file, "Daily budget used", "gen_ai_agent_id", two)
    assert _close(percent["intern"], 75.0) and _close(percent["cto"], 35.0), percent


def test_agent_detail_tasks_by_status_for_all_agents(stack: Stack) -> None:
    tasks = _values(
        stack, "budget-agent-detail.json", "Tasks today by status", "synthorg_task_status"
    )
    assert tasks == TASKS_TODAY, tasks


def test_cost_by_provider_and_model_covers_the_ledger(stack: Stack) -> None:
    # increase() over the dashboard range extrapolates, so only the split is exact: every
    # provider/model pair of the ledger shows, and the biggest spender comes first.
    cost = _values(
        stack,
        "budget-agent-detail.json",
        "Cost by provider and model",
        "gen_ai_request_model",
    )
    ledger = {c[3] for c in COSTS}
    assert ledger <= set(cost), cost
    # Calls without a model (the ledger's CALLS) are filed under "_unknown", at zero cost.
    assert all(cost[m] == 0 for m in set(cost) - ledger), cost
    assert max(cost, key=lambda m: cost[m]) == "claude-opus-4", cost


def _png_script() -> Any:
    path = Path(__file__).resolve().parents[2] / "scripts" / "render_dashboard_pngs.py"
    spec = importlib.util.spec_from_file_location("render_dashboard_pngs", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_png_script_draws_every_panel_with_data(stack: Stack, tmp_path: Path) -> None:
    limits_path = tmp_path / "limits-dashboards.yaml"
    limits_path.write_text(LIMITS)
    report = _png_script().render_pngs(
        stack.prometheus.url, limits_path, tmp_path / "img", range_s=RANGE_S
    )
    assert not report.failed, report.failed
    history_only = {
        f"{file} / {panel['title']}"
        for file, dashboard in stack.dashboards.items()
        for panel in _panels(dashboard)
        if panel["targets"] and all(series_used(t["expr"]) & MAY_BE_EMPTY for t in panel["targets"])
    }
    assert not set(report.empty) - history_only, report.empty
    assert sorted(p.name for p in report.files) == [
        "budget-agent-detail.png",
        "budget-overview.png",
        "budget-pipeline-health.png",
    ]
    for path in report.files:
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 20_000, path


def _recorded_by_rules(stack: Stack, name: str) -> bool:
    groups = stack.prometheus.api("/api/v1/rules")["groups"]
    return any(rule.get("name") == name for group in groups for rule in group["rules"])


def test_coverage_beside_spend_shows_the_unpriced_calls(stack: Stack) -> None:
    """Coverage panels on the ledger's calls. Priced calls: every cost (cto 3, intern,
    auditor, writer 1 each); unpriced: intern's call and cto's dropped cost (-1), which is
    still recorded as an unpriced call; cto's failed call counts on neither side. So cto 3/4,
    intern 1/2, auditor and writer 1, the organisation 6/8: cto and intern read red."""
    n = spec.Names(stack.namespace)
    if not _recorded_by_rules(stack, n.agent_coverage):
        pytest.skip("the coverage recording rules are not in this tree yet (issue 16, rules part)")
    _wait(lambda: len(stack.prometheus.query(n.agent_coverage)) == 4, 30, "coverage per agent")
    # The spend stats: spent, limit, then coverage (query C).
    detail = _values(stack, "budget-agent-detail.json", "Spend today", "gen_ai_agent_id", ref="C")
    assert detail["auditor"] == 1.0 and detail["writer"] == 1.0, detail
    # The rules' window may extrapolate: the ratio's side of the floor is what the panel shows.
    assert 0 < detail["cto"] < 0.95 and 0 < detail["intern"] < 0.95, detail
    assert detail["intern"] < detail["cto"], detail  # 1/2 < 3/4
    org = _values(stack, "budget-overview.json", "Spend today", "", ref="C")
    assert 0 < org[""] < 0.95, org


def test_per_task_limit_and_over_limit_panels(stack: Stack) -> None:
    """The per-task limit in force beside the over-limit count: cto's own 3, the default 2 for
    the others. cto's task t1 cost 4.0 (over 3), t2 2.0; the other agents' tasks carry no
    task_id, so none of theirs is over (0, not absent, for an agent with a limit)."""
    limits = {"cto": 3.0, "intern": 2.0, "auditor": 2.0, "writer": 2.0}
    file, title, agent = "budget-overview.json", "Cost per task by agent", "gen_ai_agent_id"
    limit = _values(stack, file, title, agent, ref="E")
    assert {a: limit.get(a) for a in limits} == limits, limit
    over = _wait(
        lambda: (v := _values(stack, file, title, agent, ref="F")).get("cto") == 1.0 and v,
        30,
        "cto's over-limit task counted",
    )
    assert {a: over.get(a) for a in limits} == {**dict.fromkeys(limits, 0.0), "cto": 1.0}, over
    assert _values(stack, file, "Tasks over their limit today", "") == {"": 1.0}
    cto = {**ALL, "agent": "cto"}
    detail = "budget-agent-detail.json"
    assert _values(stack, detail, "Cost per task", agent, cto, ref="D") == {"cto": 3.0}
    over_today = _values(stack, detail, "Tasks over the per-task limit today", agent, cto)
    assert over_today == {"cto": 1.0}, over_today


def test_cost_per_task_distribution_shows_the_ledger_tasks(stack: Stack) -> None:
    """cto's two finished tasks, 2.0 and 4.0: powers of two, so bucket edges. The median's
    rank (1 of 2) falls between them: 2.0 (the top of 2.0's bucket) or, when increase()'s
    extrapolation rounds the rank a hair up, the bottom of 4.0's bucket (3.989 at scale 8).
    The max bucket's top is 4.0; p90 interpolates inside 4.0's bucket (under 1 % wide), so
    just under 4.0. Only cto has tasks with a task_id: only cto has a row."""
    file, title, agent = "budget-overview.json", "Cost per task by agent", "gen_ai_agent_id"
    tasks = _values(stack, file, title, agent, ref="A")
    # increase() over the range extrapolates a little; the column shows whole tasks.
    assert tasks.keys() == {"cto"} and 2.0 <= tasks["cto"] < 2.5, tasks
    median = _values(stack, file, title, agent, ref="B")
    p90 = _values(stack, file, title, agent, ref="C")
    top = _values(stack, file, title, agent, ref="D")
    between = (2.0, 4.0 * 2 ** (-1 / 256))  # the top of 2.0's bucket, the bottom of 4.0's
    assert any(_close(median["cto"], m) for m in between), median
    assert _close(top["cto"], 4.0), top
    assert between[1] < p90["cto"] < 4.0, p90
    detail = _values(
        stack, "budget-agent-detail.json", "Cost per task", agent, {**ALL, "agent": "cto"}
    )
    assert detail.keys() == {"cto"} and any(_close(detail["cto"], m) for m in between), detail
