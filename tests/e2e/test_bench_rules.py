"""`make bench-rules` at a small N: it runs, reports, and fails on a wrong figure.

The benchmark itself is not a test (its numbers depend on the machine); this checks that it
works end to end with the real promtool and Prometheus, and that its accuracy check can fail.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

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
        "synthorg-budget-task-cost",
        "synthorg-budget-coverage",
        "synthorg-budget-task-cost-alerts",
    )
    for group in groups:
        assert f"| 20 | 10 s | new | {group} |" in out, out
    assert "synthorg_cost_period_to_date" in out and "| NO |" not in out, out
    # 20 agents, 1 of them (agent 7) with its third model (3 of its 6 calls) unpriced.
    assert "| synthorg_cost_coverage_ratio | 0.97" in out, out
    assert "| sum(synthorg_agent_tasks_over_limit_day_to_date) |" in out, out
    # Each agent finishes a task every 20 minutes and 1 in 10 is over the limit: within the
    # last hour at least one agent in 20 finished one.
    firing = re.search(r"\| new \| SynthorgAgentTaskOverBudget \| (\d+) \|", out)
    assert firing and int(firing.group(1)) > 0, out
    assert "| new | SynthorgBudgetCoverageLow |" in out, out


def _limits_with_per_task(tmp_path: Path) -> Path:
    """limits.yaml with a per-task default limit (which the bench's task costs follow)."""
    data = yaml.safe_load((ROOT / "limits.yaml").read_text())
    data["revisions"][-1]["agent_defaults"]["per_task"] = 0.5
    path = tmp_path / "limits.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_bench_fails_when_coverage_or_over_limit_tasks_are_off_the_data(tmp_path: Path) -> None:
    limits = _limits_with_per_task(tmp_path)
    rules = tmp_path / "rules"
    rules.mkdir()
    files = render_rule_files(load_limits(limits), "limits.yaml", evaluation_interval="5s")
    for name, text in files.items():
        # Every task counted over the limit; coverage as the unpriced share.
        wrong = re.sub(r"histogram_fraction\([^,]+, \+Inf", "histogram_fraction(0, +Inf", text)
        wrong = wrong.replace('synthorg_call_outcome="priced"', 'synthorg_call_outcome="unpriced"')
        (rules / name).write_text(wrong)
    recording = (rules / "budget-recording.yml").read_text()
    assert "histogram_fraction(0, +Inf" in recording and 'outcome="unpriced"}' in recording
    result = _bench(tmp_path, "--baseline-rules", "", "--rules-dir", str(rules),
                    "--limits", str(limits))  # fmt: skip
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    verdict = result.stdout.splitlines()[-1]
    assert "recorded figures off the data" in verdict
    assert "synthorg_cost_coverage_ratio" in verdict
    assert "sum(synthorg_agent_tasks_over_limit_day_to_date)" in verdict
    assert "synthorg_cost_period_to_date" not in verdict


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
