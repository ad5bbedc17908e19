"""The bundle spec (budgetwatch.spec) is the one place for names: it spells the contract, and
every artifact follows it.

1. For namespace `synthorg` the spec gives exactly the contract's names (tests/support/contract.py,
   copied by hand from shared/design/contract.md: the oracle the spec is checked against).
2. Everything rendered for another namespace (`acme`) follows: rules, alerts, dashboards, the
   instrumentation's instruments; runbooks and the Alertmanager config (namespace-free,
   hand-written) still cover every alert and every label they route and inhibit on.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from tests.support.contract import (
    ALERT_SUFFIXES,
    OTLP_INSTRUMENTS,
    RAW_SERIES,
    RECORDED_SERIES,
)
from tests.support.promql_scan import series_used

from budgetwatch import cli, spec
from budgetwatch.dev.stack import ROOT
from budgetwatch.limits import load_limits

ACME_LIMITS = (
    (ROOT / "limits.yaml").read_text().replace("namespace: synthorg", "namespace: acme", 1)
)


def test_the_spec_spells_the_contract() -> None:
    names = spec.Names("synthorg")
    assert set(names.published()) == RECORDED_SERIES
    assert set(names.raw()) == RAW_SERIES
    assert {a.removeprefix("Synthorg") for a in spec.Alerts("synthorg").anchors()} == ALERT_SUFFIXES
    assert spec.AGENT == "gen_ai_agent_id"
    assert [w.name for w in spec.WINDOWS] == ["daily", "monthly"]
    assert [(level.name, level.severity) for level in spec.LEVELS] == [
        ("warning", "warning"),
        ("critical", "critical"),
        ("exhausted", "critical"),
    ]


def test_window_edges_are_promql_of_the_window_start() -> None:
    # Day: 00:00 UTC of the (possibly shortened) day; period: reset day R of this or last month.
    assert spec.DAILY.edge(60, 1) == "floor(vector(time()) / 60) * 60"
    first = spec.MONTHLY.edge(86400, 1)
    assert first.endswith("- (day_of_month(vector(time())) - 1) * 86400")
    fifteenth = spec.MONTHLY.edge(86400, 15)
    assert ">= 15" in fifteenth and "days_in_month" in fifteenth


@pytest.fixture(scope="module")
def acme(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """limits.yaml with namespace acme, rendered by the CLI as `make generate` would."""
    work = tmp_path_factory.mktemp("acme")
    (work / "limits.yaml").write_text(ACME_LIMITS)
    assert cli.main(["render", str(work / "limits.yaml"), "--output", str(work / "out")]) == 0
    rules = {
        p.name: yaml.safe_load(p.read_text()) for p in sorted((work / "out" / "rules").iterdir())
    }
    texts = {
        p.name: p.read_text()
        for kind in ("rules", "dashboards")
        for p in sorted((work / "out" / kind).iterdir())
    }
    return {"rules": rules, "texts": texts, "limits": load_limits(work / "limits.yaml")}


def _rules(acme: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for doc in acme["rules"].values() for g in doc["groups"] for r in g["rules"]]


def test_no_artifact_names_the_default_namespace(acme: dict[str, Any]) -> None:
    for name, text in acme["texts"].items():
        assert "synthorg" not in text.lower(), name


def test_every_series_in_rules_and_panels_is_the_namespace_s_or_external(
    acme: dict[str, Any],
) -> None:
    external = set(spec.EXTERNAL_SERIES) | {"ALERTS"}
    exprs = [r["expr"] for r in _rules(acme)]
    for text in acme["texts"].values():
        exprs += re.findall(r'"expr": "((?:[^"\\]|\\.)*)"', text)
    assert len(exprs) > 100
    for expr in exprs:
        for name in series_used(expr.replace('\\"', '"')):
            assert name.startswith(("acme_", "acme:")) or name in external, (name, expr)


def test_the_rules_publish_every_series_the_spec_names(acme: dict[str, Any]) -> None:
    records = {r["record"] for r in _rules(acme) if "record" in r}
    assert set(spec.Names("acme").published()) <= records
    assert all(r.startswith(("acme_", "acme:")) for r in records)


def test_alerts_are_the_spec_s_with_its_labels(acme: dict[str, Any]) -> None:
    alerts = [r for r in _rules(acme) if "alert" in r]
    anchors = spec.Alerts("acme").anchors()
    assert {a["alert"] for a in alerts} == set(anchors)
    for alert in alerts:
        assert alert["annotations"]["runbook_url"].endswith("#" + anchors[alert["alert"]])
        level = alert["labels"].get(spec.LEVEL_LABEL)
        if level is not None:
            (found,) = [lv for lv in spec.LEVELS if lv.name == level]
            assert alert["labels"][spec.SEVERITY_LABEL] == found.severity
            assert alert["labels"][spec.WINDOW_LABEL] in spec.WINDOW_NAMES
    # Per level and window: the org's rule, and the agents' for exact figures and for lower
    # bounds (labelled so): 3 x 2 x (1 + 2).
    assert sum(spec.LEVEL_LABEL in a["labels"] for a in alerts) == 18
    lower = [a for a in alerts if a["labels"].get(spec.FIGURE_LABEL) == spec.LOWER_BOUND]
    assert len(lower) == 6 and all(a["alert"].startswith("AcmeAgentBudget") for a in lower)


def test_runbooks_have_a_section_for_every_alert_of_any_namespace() -> None:
    text = (ROOT / "alerts" / "runbooks.md").read_text()
    for anchor in spec.Alerts("acme").anchors().values():
        assert f'<a id="{anchor}"></a>' in text, anchor


def test_alertmanager_config_routes_on_the_spec_s_labels_and_levels() -> None:
    config = yaml.safe_load((ROOT / "alerts" / "alertmanager.yml").read_text())
    labels = {spec.AGENT, spec.WINDOW_LABEL, spec.LEVEL_LABEL, spec.SEVERITY_LABEL, "alertname"}
    assert set(config["route"]["group_by"]) <= labels
    level_rules = [
        r for r in config["inhibit_rules"] if "budget_level" in str(r["source_matchers"])
    ]
    # Each level inhibits exactly the levels below it (spec.inhibited_by), per agent and window.
    inhibits: dict[str, set[str]] = {}
    for rule in level_rules:
        source = re.search(r'budget_level="(\w+)"', rule["source_matchers"][0])
        target = re.search(r'budget_level=~?"([\w|]+)"', " ".join(rule["target_matchers"]))
        if source and target:
            inhibits.setdefault(source.group(1), set()).update(target.group(1).split("|"))
            assert set(rule["equal"]) == {spec.AGENT, spec.WINDOW_LABEL}
    for level in spec.LEVELS:
        expected = {lower.name for lower in spec.inhibited_by(level)}
        assert inhibits.get(level.name, set()) == expected, level.name


def test_the_instrumentation_emits_the_spec_s_instruments_in_any_namespace() -> None:
    from budgetwatch import BudgetTelemetry

    reader = InMemoryMetricReader()
    telemetry = BudgetTelemetry(
        "svc", namespace="acme", meter_provider=MeterProvider(metric_readers=[reader])
    )
    try:
        telemetry.record_cost("cto", 0.5, provider="anthropic", model="m", input_tokens=3)
        telemetry.record_task("cto", "completed")
        data = reader.get_metrics_data()
    finally:
        telemetry.shutdown()
    assert data is not None
    seen: dict[str, set[str]] = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            assert sm.scope.name == spec.SCOPE
            for metric in sm.metrics:
                for point in metric.data.data_points:
                    seen.setdefault(metric.name, set()).update(point.attributes or {})
    for name, attributes in OTLP_INSTRUMENTS.items():
        acme_name = name.replace("synthorg", "acme", 1)
        assert seen[acme_name] == {a.replace("synthorg", "acme") for a in attributes}, name
    assert set(seen) <= {i.otel_name("acme") for i in spec.INSTRUMENTS}


def test_a_new_window_is_a_row_of_the_table() -> None:
    # What docs/architecture.md promises: names of a window come from its row.
    weekly = spec.Window(
        name="monthly",  # a real new window would add its name to WindowName and limits.yaml
        label="week",
        edge=spec.day_start_expr,
        to_date="week_to_date",
        org_percent="budget_weekly_used_percent",
        agent_percent="agent_budget_weekly_used_percent",
        when="this week",
    )
    names = spec.Names("acme")
    assert names.agent_to_date(weekly) == "acme_agent_cost_week_to_date"
    assert names.org_percent(weekly) == "acme_budget_weekly_used_percent"
    assert names.window_start(weekly) == "acme:time:week_start"


def test_the_spec_imports_nothing_outside_the_standard_library() -> None:
    for module in ("spec.py", "spec_series.py"):  # the spec and its series names
        source = (Path(spec.__file__).parent / module).read_text()
        imports = re.findall(r"^(?:from|import) ([\w.]+)", source, re.M)
        allowed = {
            "__future__",
            "collections.abc",
            "dataclasses",
            "typing",
            ".spec",
            ".spec_series",
        }
        assert set(imports) <= allowed, module
