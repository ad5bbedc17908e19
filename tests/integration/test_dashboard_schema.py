"""Strict schema check of every dashboard with dashcheck (tools/dashcheck, built by make tools).

dashcheck decodes each file with the grafana-foundation-sdk Go module's UnmarshalJSONStrict
(Grafana's dashboard schema, generated from the same CUE as Grafana's): an unknown field, a
wrong type or a missing required field anywhere is an error, panel options and queries
included. The negative cases prove it really is that strict.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from budgetwatch.dashboards import render_dashboards
from budgetwatch.dev.stack import ROOT, run_tool
from budgetwatch.limits import load_limits, parse_limits


def _check(*paths: Path) -> tuple[int, str]:
    result = run_tool("dashcheck", *paths, timeout=60)
    return result.returncode, result.stdout + result.stderr


def test_committed_dashboards_pass_the_strict_schema() -> None:
    paths = sorted((ROOT / "dashboards").glob("*.json"))
    assert len(paths) == 3
    code, output = _check(*paths)
    assert code == 0, output
    assert output.count(": ok") == 3


def test_dashboards_for_another_limits_file_pass(tmp_path: Path) -> None:
    doc = yaml.safe_load((ROOT / "limits.yaml").read_text())
    doc.update(namespace="acme", currency="XAU", thresholds={"warning": 50, "critical": 70})
    limits = parse_limits(yaml.safe_dump(doc), "other.yaml")
    for name, text in render_dashboards(limits, "other.yaml").items():
        (tmp_path / name).write_text(text)
    code, output = _check(*sorted(tmp_path.glob("*.json")))
    assert code == 0, output


def _first_panel(d: dict[str, Any]) -> dict[str, Any]:
    return next(p for p in d["panels"] if p["type"] != "row")


def _unknown_option(d: dict[str, Any]) -> None:
    _first_panel(d)["options"]["colour"] = "red"


def _unknown_query_field(d: dict[str, Any]) -> None:
    _first_panel(d)["targets"][0]["expression"] = "up"


def _unknown_field_config(d: dict[str, Any]) -> None:
    _first_panel(d)["fieldConfig"]["defaults"]["units"] = "percent"


def _query_without_datasource(d: dict[str, Any]) -> None:
    del _first_panel(d)["targets"][0]["datasource"]


def _unknown_panel_type(d: dict[str, Any]) -> None:
    _first_panel(d)["type"] = "gauges"


def _wrong_type(d: dict[str, Any]) -> None:
    d["refresh"] = 60


def _unknown_top_level(d: dict[str, Any]) -> None:
    d["style"] = "dark"  # dropped from Grafana's schema


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (_unknown_option, "colour"),
        (_unknown_query_field, "expression"),
        (_unknown_field_config, "units"),
        (_query_without_datasource, "not a Prometheus query"),
        (_unknown_panel_type, "unknown panel type"),
        (_wrong_type, "refresh"),
        (_unknown_top_level, "style"),
    ],
)
def test_dashcheck_refuses_a_broken_dashboard(
    tmp_path: Path, break_it: Callable[[dict[str, Any]], None], message: str
) -> None:
    limits = load_limits(ROOT / "limits.yaml")
    good = json.loads(render_dashboards(limits, "limits.yaml")["budget-overview.json"])
    bad = copy.deepcopy(good)
    break_it(bad)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    code, output = _check(path)
    assert code == 1, output
    assert message in output, output
