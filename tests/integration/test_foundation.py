"""The shipped configs are accepted by the real tools, and the toolchain itself behaves.

These run the binaries built by `make tools`: our otelcol distribution, Prometheus 3 and
promtool, Alertmanager and amtool.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import urllib.request
from pathlib import Path

import yaml
from tests.support.rawotlp import cost_request

from budgetwatch.dev.stack import (
    ROOT,
    TOOL_NAMES,
    TOOLS_BIN,
    prometheus_config,
    run_tool,
    running,
    start_collector,
    start_prometheus,
    wait_until,
)


def test_every_tool_was_built() -> None:
    missing = [name for name in TOOL_NAMES if not (TOOLS_BIN / name).is_file()]
    assert missing == [], f"make tools did not build {missing}"


def test_prometheus_is_version_3() -> None:
    result = run_tool("prometheus", "--version")
    assert result.returncode == 0, result.stderr
    assert "prometheus, version 3." in result.stdout + result.stderr


def _component_types(config: dict[str, object]) -> set[str]:
    """Component types a collector config declares (`otlp/auth` is type `otlp`)."""
    types: set[str] = set()
    for section in ("receivers", "processors", "exporters", "extensions", "connectors"):
        for name in config.get(section) or {}:  # type: ignore[attr-defined]
            types.add(str(name).split("/")[0])
    return types


def test_thanos_is_the_pinned_version_with_every_component_used() -> None:
    pin = re.search(r"^THANOS_VERSION=v(\S+)", (ROOT / "tools" / "versions.env").read_text(), re.M)
    assert pin, "THANOS_VERSION missing from tools/versions.env"
    result = run_tool("thanos", "--version")
    assert result.returncode == 0, result.stderr
    assert f"thanos, version {pin.group(1)} " in result.stdout + result.stderr  # stamped
    for component in ("receive", "query", "rule"):
        assert run_tool("thanos", component, "--help").returncode == 0, component


def test_collector_has_exactly_the_components_the_configs_use() -> None:
    result = run_tool("otelcol", "components")
    assert result.returncode == 0, result.stderr
    built = yaml.safe_load(result.stdout)
    built_types = {
        entry["name"]
        for section in ("receivers", "processors", "exporters", "extensions", "connectors")
        for entry in built.get(section) or []
    }
    used: set[str] = set()
    # the base configs, and the GenAI sources merged on top of them (docs/sources.md)
    configs = [*(ROOT / "otel-collector").glob("config*.yaml")]
    configs += [ROOT / "otel-collector" / "sources.yaml", ROOT / "otel-collector" / "pricing.yaml"]
    for path in sorted(configs):
        used |= _component_types(yaml.safe_load(path.read_text()))
    assert used == built_types, (
        f"built but unused: {built_types - used}; used but not built: {used - built_types}"
    )
    schemes = {entry["scheme"] for entry in built.get("providers") or []}
    assert {"env", "file"} <= schemes


def test_otelcol_validate_accepts_the_shipped_config() -> None:
    result = run_tool("otelcol", "validate", f"--config={ROOT / 'otel-collector' / 'config.yaml'}")
    assert result.returncode == 0, result.stdout + result.stderr


def test_otelcol_validate_rejects_a_broken_config(tmp_path: Path) -> None:
    # Guards the test above: validate must really check, not just parse YAML.
    broken = tmp_path / "config.yaml"
    text = (ROOT / "otel-collector" / "config.yaml").read_text()
    broken.write_text(text.replace("exporters: [prometheus_remote_write]", "exporters: [nosuch]"))
    result = run_tool("otelcol", "validate", f"--config={broken}")
    assert result.returncode != 0
    assert "nosuch" in result.stdout + result.stderr


def test_promtool_accepts_the_example_prometheus_config() -> None:
    result = run_tool("promtool", "check", "config", ROOT / "alerts" / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_amtool_accepts_the_alertmanager_config() -> None:
    result = run_tool("amtool", "check-config", ROOT / "alerts" / "alertmanager.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_one_otlp_request_reaches_prometheus_through_our_collector(tmp_path: Path) -> None:
    prometheus = start_prometheus(tmp_path / "prometheus", prometheus_config())
    with running(prometheus.server):
        collector = start_collector(
            tmp_path / "otelcol", remote_write_url=f"{prometheus.url}/api/v1/write"
        )
        with running(collector.server):
            body = cost_request(
                "cto",
                0.0123,
                instance="foundation-test",
                service="synthorg",
                attributes={
                    "gen_ai.provider.name": "anthropic",
                    "gen_ai.request.model": "claude-sonnet-4",
                },
            )
            request = urllib.request.Request(
                f"{collector.otlp_http}/v1/metrics",
                data=body,
                headers={"Content-Type": "application/x-protobuf"},
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200

            query = 'synthorg_cost_total{gen_ai_agent_id="cto"}'
            wait_until(lambda: bool(prometheus.query(query)), 30, "the sample in Prometheus")
            [series] = prometheus.query(query)
            assert float(series["value"][1]) == 0.0123
            labels = series["metric"]
            assert labels["job"] == "synthorg"
            assert labels["instance"] == "foundation-test"
            assert labels["gen_ai_provider_name"] == "anthropic"
            assert labels["gen_ai_request_model"] == "claude-sonnet-4"


def test_collector_metrics_are_exposed_for_scraping(tmp_path: Path) -> None:
    collector = start_collector(tmp_path, remote_write_url="http://127.0.0.1:9/api/v1/write")
    with running(collector.server):
        url = f"http://127.0.0.1:{collector.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        assert "otelcol_process_uptime" in text


def test_second_make_tools_does_nothing_and_says_so() -> None:
    started = time.monotonic()
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build-tools.sh"), "all"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("up to date") == 5, result.stdout  # 3 tools, dashcheck, thanos
    assert "building" not in result.stdout
    assert elapsed < 60, f"an up-to-date make tools took {elapsed:.0f}s"


def test_make_tools_names_go_when_it_is_missing(tmp_path: Path) -> None:
    # A PATH with bash and coreutils but no Go: the script must say what is missing.
    shim = tmp_path / "bin"
    shim.mkdir()
    for name in ("bash", "dirname", "mkdir", "cat", "sed", "sha256sum", "cut", "printf"):
        for directory in ("/usr/bin", "/bin"):
            candidate = Path(directory) / name
            if candidate.exists():
                (shim / name).symlink_to(candidate)
                break
    result = subprocess.run(
        [str(shim / "bash"), str(ROOT / "scripts" / "build-tools.sh"), "all"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": str(shim), "HOME": os.environ.get("HOME", str(tmp_path))},
    )
    assert result.returncode != 0
    assert "Go is required" in result.stderr
