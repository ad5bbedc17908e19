"""`pip install budgetwatch` (the built wheel, no extras) into a fresh virtual environment,
then every command works: validate (limits and price table), render (rules, dashboards and
the collector's pricing statements), diff, import-synthorg. Dependencies come from PyPI, as
for a user; matplotlib (the picture renderer of the docs) is not among them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from budgetwatch.dev.servers import ROOT

pytestmark = pytest.mark.e2e  # builds a wheel and installs from PyPI: a minute or two


def run(argv: list[str], cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{argv}:\n{result.stdout}\n{result.stderr}"
    return result


def test_the_wheel_installs_alone_and_every_command_works(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--wheel-dir",
            str(wheels),
            str(ROOT),
        ],
        cwd=tmp_path,
    )
    (wheel,) = wheels.glob("budgetwatch-*.whl")
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    python, bw = str(venv / "bin" / "python"), str(venv / "bin" / "budgetwatch")
    run([python, "-m", "pip", "install", "--quiet", str(wheel)], cwd=tmp_path)

    installed = json.loads(run([python, "-m", "pip", "list", "--format=json"], tmp_path).stdout)
    names = {p["name"].lower().replace("_", "-") for p in installed}
    assert "grafana-foundation-sdk" in names and "matplotlib" not in names, sorted(names)

    limits = ROOT / "limits.yaml"
    prices = ROOT / "otel-collector" / "prices.yaml"
    out = tmp_path / "out"
    assert "valid" in run([bw, "validate", str(limits), str(prices)], tmp_path).stdout
    run([bw, "render", str(limits), "--output", str(out), "--prices", str(prices)], tmp_path)
    assert sorted(p.name for p in (out / "rules").iterdir()) == sorted(
        p.name for p in (ROOT / "alerts" / "rules").glob("*.yml")
    )
    for dashboard in (ROOT / "dashboards").glob("*.json"):
        assert (out / "dashboards" / dashboard.name).read_text() == dashboard.read_text()
    pricing = (out / "collector" / "pricing.yaml").read_text()
    assert pricing == (ROOT / "otel-collector" / "pricing.yaml").read_text()

    run([bw, "diff", str(limits), str(limits)], tmp_path)
    synthorg = tmp_path / "synthorg.yaml"
    synthorg.write_text("budget:\n  total_monthly: 250\n  reset_day: 5\n")
    imported = run(
        [bw, "import-synthorg", str(synthorg), "--effective-from", "2026-11-05T00:00:00Z"],
        tmp_path,
    ).stdout
    assert "monthly: 250" in imported and "reset_day: 5" in imported
