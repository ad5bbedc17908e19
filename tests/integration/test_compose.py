"""compose.yaml is accepted by Debian's `docker-compose config` and runs the shipped configs.

No Docker engine runs here, so the file is checked, not started: docker-compose validates the
schema and resolves it, and the assertions below check what it resolved to (pinned images
matching our own builds, the shipped config files mounted, ports on loopback only).
Needs the Debian package `docker-compose` (1.29); `make test` installs it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from budgetwatch.dev.stack import ROOT


def _docker_compose() -> str:
    path = shutil.which("docker-compose")
    if path is None:
        pytest.fail(
            "docker-compose is missing: install Debian's package (apt-get install docker-compose)"
        )
    return path


def _config(compose_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_docker_compose(), "-f", str(compose_file), "--project-directory", str(ROOT), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin"},  # no GRAFANA_ADMIN_PASSWORD etc. from the caller
    )


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    result = _config(ROOT / "compose.yaml")
    assert result.returncode == 0, result.stderr
    doc: dict[str, Any] = yaml.safe_load(result.stdout)
    return doc


def _pin(name: str) -> str:
    text = (ROOT / "tools" / "versions.env").read_text()
    match = re.search(rf"^{name}=(\S+)", text, re.M)
    assert match, f"{name} not in tools/versions.env"
    return match.group(1)


def test_images_are_official_and_match_our_pinned_builds(resolved: dict[str, Any]) -> None:
    images = {name: svc["image"] for name, svc in resolved["services"].items()}
    # Prometheus's Go module tag v0.3XX.Y is Prometheus 3.XX.Y.
    major_minor = re.fullmatch(r"v0\.3(\d\d)\.(\d+)", _pin("PROMETHEUS_VERSION"))
    assert major_minor, _pin("PROMETHEUS_VERSION")
    prom = f"v3.{int(major_minor.group(1))}.{major_minor.group(2)}"
    collector = _pin("OCB_VERSION").removeprefix("v")
    assert images == {
        "prometheus": f"prom/prometheus:{prom}",
        "alertmanager": f"prom/alertmanager:{_pin('ALERTMANAGER_VERSION')}",
        "otel-collector": f"otel/opentelemetry-collector-contrib:{collector}",
        "grafana": images["grafana"],
    }
    assert re.fullmatch(r"grafana/grafana:\d+\.\d+\.\d+", images["grafana"]), images["grafana"]


def test_the_shipped_configs_are_mounted(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    mounts = {
        (name, volume.split(":")[1]): Path(volume.split(":")[0])
        for name, svc in services.items()
        for volume in svc.get("volumes", [])
        if volume.startswith("/")
    }
    expected = {
        ("otel-collector", "/etc/otelcol-contrib/config.yaml"): ROOT / "otel-collector/config.yaml",
        ("prometheus", "/etc/prometheus/prometheus.yml"): ROOT / "alerts/prometheus.yml",
        ("prometheus", "/etc/prometheus/rules"): ROOT / "alerts/rules",
        ("alertmanager", "/etc/alertmanager/alertmanager.yml"): ROOT / "alerts/alertmanager.yml",
        ("alertmanager", "/etc/alertmanager/templates"): ROOT / "alerts/templates",
        ("alertmanager", "/etc/alertmanager/secrets"): ROOT / "alerts/secrets",
        ("grafana", "/etc/grafana/provisioning"): ROOT / "dashboards/provisioning",
        ("grafana", "/var/lib/grafana/dashboards/budgetwatch"): ROOT / "dashboards",
    }
    assert {k: v.resolve() for k, v in mounts.items()} == {
        k: v.resolve() for k, v in expected.items()
    }
    for source in expected.values():
        assert source.exists(), f"compose.yaml mounts {source}, which is not in the repository"
    # The collector's command must read the file that is mounted.
    assert services["otel-collector"]["command"] == ["--config=/etc/otelcol-contrib/config.yaml"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]
    # Alertmanager resolves url_file secrets against its working directory.
    alertmanager = services["alertmanager"]
    assert alertmanager["working_dir"] == "/etc/alertmanager"
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in alertmanager["command"]
    config = yaml.safe_load((ROOT / "alerts" / "alertmanager.yml").read_text())
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            if "url_file" in hook:
                assert (ROOT / "alerts" / hook["url_file"]).is_file(), hook["url_file"]


def test_ports_are_published_on_loopback_only(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    published = services["prometheus"]["ports"]
    assert {p.split(":")[0] for p in published} == {"127.0.0.1"}, published
    assert {int(p.split(":")[1]) for p in published} == {9090, 9093, 4317, 4318, 3000}
    # The others share Prometheus's namespace, so 127.0.0.1 in the shipped configs holds.
    for name in ("otel-collector", "alertmanager", "grafana"):
        assert services[name]["network_mode"] == "service:prometheus", name
        assert "ports" not in services[name], name


def test_collector_environment_uses_the_documented_variables(resolved: dict[str, Any]) -> None:
    header = (ROOT / "otel-collector" / "config.yaml").read_text()
    env = resolved["services"]["otel-collector"]["environment"]
    for name in env:
        assert name in header, f"{name} is not a variable otel-collector/config.yaml reads"
    assert env["BUDGETWATCH_OTLP_HTTP_ENDPOINT"] == "0.0.0.0:4318"


def test_grafana_gets_every_variable_its_provisioning_reads(resolved: dict[str, Any]) -> None:
    env = resolved["services"]["grafana"]["environment"]
    provisioning = ROOT / "dashboards" / "provisioning"
    wanted = {
        name
        for path in provisioning.rglob("*.yaml")
        for name in re.findall(r"\$\{(\w+)\}", path.read_text())
    }
    assert wanted, "no provisioning files read a variable: update this test"
    assert wanted <= env.keys(), wanted - env.keys()
    # The dashboards provider reads the directory compose.yaml mounts the dashboards at.
    mounts = [v.split(":")[1] for v in resolved["services"]["grafana"]["volumes"]]
    assert env["BUDGETWATCH_DASHBOARDS_DIR"] in mounts


def test_docker_compose_really_validates(tmp_path: Path) -> None:
    # Guards the tests above: a wrong key must be refused, not passed through.
    broken = tmp_path / "compose.yaml"
    text = (ROOT / "compose.yaml").read_text()
    broken.write_text(text.replace("network_mode:", "network_mod:", 1))
    result = _config(broken)
    assert result.returncode != 0
    assert "network_mod" in result.stderr
