"""The GenAI sources config (otel-collector/sources.yaml + pricing.yaml) with our collector:
it validates on top of every shipped base config, and the builder manifest holds exactly the
components the configs use."""

from __future__ import annotations

import os
import subprocess

import yaml
from tests.support.tools import ROOT, tool


def test_the_shipped_sources_config_validates_with_every_base_config() -> None:
    """config.yaml, config.auth.yaml and config.mimir.yaml + sources.yaml + pricing.yaml."""
    base = ROOT / "otel-collector"
    for config in ("config.yaml", "config.auth.yaml", "config.mimir.yaml"):
        result = subprocess.run(
            [
                str(tool("otelcol")),
                "validate",
                f"--config={base / config}",
                f"--config={base / 'sources.yaml'}",
                f"--config={base / 'pricing.yaml'}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "BUDGETWATCH_OTLP_TOKEN": "test-token"},
            check=False,
        )
        assert result.returncode == 0, f"{config}: {result.stderr[-2000:]}"


def test_the_manifest_holds_the_components_the_configs_use() -> None:
    manifest = yaml.safe_load((ROOT / "otel-collector" / "builder-config.yaml").read_text())
    listed = subprocess.run(
        [str(tool("otelcol")), "components"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    components = yaml.safe_load(listed)
    used: set[str] = set()
    for name in (
        "config.yaml",
        "config.auth.yaml",
        "config.mimir.yaml",
        "sources.yaml",
        "pricing.yaml",
    ):
        config = yaml.safe_load((ROOT / "otel-collector" / name).read_text())
        for kind in ("receivers", "processors", "exporters", "extensions", "connectors"):
            used |= {key.split("/")[0] for key in (config.get(kind) or {})}
    built = {
        c["name"]
        for kind in ("receivers", "processors", "exporters", "extensions", "connectors")
        for c in components.get(kind, [])
    }
    assert used <= built, used - built
    counted = sum(
        len(manifest.get(k, []))
        for k in ("receivers", "processors", "exporters", "extensions", "connectors")
    )
    assert counted == len(built), "the manifest lists a component no config uses (or the reverse)"
    assert len(used) == len(built), built - used
