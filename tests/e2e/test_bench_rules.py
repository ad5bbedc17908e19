"""`make bench-rules` at a small N: it runs, reports, and fails on a wrong figure.

The benchmark itself is not a test (its numbers depend on the machine); this checks that it
works end to end with the real promtool and Prometheus, and that its accuracy check can fail.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from budgetwatch.dev.stack import ROOT
from budgetwatch.limits import load_limits
from budgetwatch.rules import render_rule_files

pytestmark = pytest.mark.e2e

BENCH = ROOT / "scripts" / "bench_rules.py"


def _bench(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH), "--agents", "20", "--interval", "10", "--rounds", "2",
         "--rule-interval", "5s", "--workdir", str(tmp_path / "work"), *args],
        capture_output=True, text=True, timeout=900, cwd=ROOT, check=False,
    )  # fmt: skip


def test_bench_reports_every_group_and_its_figures_match_the_data(tmp_path: Path) -> None:
    result = _bench(tmp_path, "--baseline-rules", "")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    groups = (
        "synthorg-budget-cost",
        "synthorg-budget-tasks",
        "synthorg-budget-early-warning",
        "synthorg-budget-spike",
        "synthorg-budget-alerts",
        "synthorg-budget-early-warning-alerts",
    )
    for group in groups:
        assert f"| 20 | 10 s | new | {group} |" in out, out
    assert "synthorg_cost_period_to_date" in out and "| NO |" not in out, out


def test_bench_fails_when_a_recorded_figure_is_off_the_data(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    files = render_rule_files(load_limits(ROOT / "limits.yaml"), "limits.yaml",
                              evaluation_interval="5s")  # fmt: skip
    for name, text in files.items():
        # A wrong org period-to-date: twice what the agents spent.
        wrong = text.replace(
            "expr: sum(synthorg_agent_cost_period_to_date) or vector(0)",
            "expr: 2 * sum(synthorg_agent_cost_period_to_date) or vector(0)",
        )
        (rules / name).write_text(wrong)
    assert "2 * sum(" in (rules / "budget-recording.yml").read_text()
    result = _bench(tmp_path, "--baseline-rules", "", "--rules-dir", str(rules))
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert "recorded figures off the data" in result.stdout
    assert "synthorg_cost_period_to_date" in result.stdout.splitlines()[-1]


def test_bench_reports_but_does_not_judge_the_previous_rules(tmp_path: Path) -> None:
    """The previous rules are measured side by side for their cost; their wrong figures (what
    the current rules fix) are reported without failing the bench."""
    rules = tmp_path / "rules"
    rules.mkdir()
    files = render_rule_files(load_limits(ROOT / "limits.yaml"), "limits.yaml",
                              evaluation_interval="5s")  # fmt: skip
    for name, text in files.items():
        (rules / name).write_text(
            text.replace(
                "expr: sum(synthorg_agent_cost_period_to_date) or vector(0)",
                "expr: 2 * sum(synthorg_agent_cost_period_to_date) or vector(0)",
            )
        )
    result = _bench(tmp_path, "--baseline-rules", str(rules))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "previous rules off the data: baseline N=20" in result.stdout
    assert "recorded figures off the data" not in result.stdout
