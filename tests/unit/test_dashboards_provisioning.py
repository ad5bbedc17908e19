"""Grafana provisioning files (dashboards/provisioning/) and their use by compose.yaml."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
PROVISIONING = ROOT / "dashboards" / "provisioning"
ENV_REF = re.compile(r"^\$\{?([A-Z_][A-Z0-9_]*)\}?$")


def _load(relative: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((PROVISIONING / relative).read_text())
    return doc


def test_layout_is_grafanas() -> None:
    # Grafana reads <provisioning>/datasources/*.yaml and <provisioning>/dashboards/*.yaml.
    files = sorted(p.relative_to(PROVISIONING).as_posix() for p in PROVISIONING.rglob("*.y*ml"))
    assert files == ["dashboards/budgetwatch.yaml", "datasources/budgetwatch.yaml"]


def test_datasource_is_prometheus_with_url_from_the_environment() -> None:
    doc = _load("datasources/budgetwatch.yaml")
    assert doc["apiVersion"] == 1
    (source,) = doc["datasources"]
    assert source["type"] == "prometheus" and source["access"] == "proxy"
    match = ENV_REF.match(source["url"])
    assert match and match.group(1) == "BUDGETWATCH_PROMETHEUS_URL"
    assert source["uid"] == "budgetwatch-prometheus"
    assert source["isDefault"] is True  # the dashboards' datasource variable opens on it


def test_dashboard_provider_loads_the_generated_files() -> None:
    doc = _load("dashboards/budgetwatch.yaml")
    assert doc["apiVersion"] == 1
    (provider,) = doc["providers"]
    assert provider["type"] == "file"
    assert provider["allowUiUpdates"] is False  # generated: edit limits.yaml, not Grafana
    match = ENV_REF.match(provider["options"]["path"])
    assert match and match.group(1) == "BUDGETWATCH_DASHBOARDS_DIR"


def test_no_absolute_paths() -> None:
    for path in PROVISIONING.rglob("*.y*ml"):
        for line in path.read_text().splitlines():
            value = line.split("#", 1)[0]
            assert not re.search(r"(^|[\s:])/[a-z]", value), (path.name, line)


def test_compose_gives_grafana_what_the_provisioning_files_need() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    grafana = compose["services"]["grafana"]
    mounts = {m.split(":")[0]: m.split(":")[1] for m in grafana["volumes"]}
    assert mounts["./dashboards/provisioning"] == "/etc/grafana/provisioning"
    env = grafana["environment"]
    assert env.get("BUDGETWATCH_DASHBOARDS_DIR") == mounts["./dashboards"], (
        "compose.yaml must set BUDGETWATCH_DASHBOARDS_DIR to where it mounts ./dashboards"
    )
    # Grafana shares the prometheus service's network namespace (see compose.yaml).
    assert env.get("BUDGETWATCH_PROMETHEUS_URL") == "http://127.0.0.1:9090"
