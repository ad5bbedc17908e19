"""The GenAI sources config (otel-collector/sources.yaml + pricing.yaml) with our collector:
it validates on top of every shipped base config (test_foundation checks that the manifest
holds exactly the components the configs use)."""

from __future__ import annotations

import os
import subprocess

from budgetwatch.dev.servers import ROOT, tool


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
