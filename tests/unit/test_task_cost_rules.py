"""The per-task cost and coverage rules' shape (their values: alerts/tests/task_cost.yml, run
by the real promtool in tests/integration/test_promtool_rules.py)."""

from __future__ import annotations

from typing import Any

import yaml

from budgetwatch import spec
from budgetwatch.limits import Limits, parse_limits
from budgetwatch.rules import ALERTS_FILE, RECORDING_FILE, render_rule_files

BASE = """
apiVersion: budgetwatch/v1
kind: BudgetLimits
revisions:
  - revision: 1
    effective_from: 2026-11-01T00:00:00Z
    org: {monthly: 1000}
    agent_defaults: {daily: 10%s}
    agents:
      cto: {daily: 20%s}
  - revision: 2
    effective_from: 2026-11-20T00:00:00Z
    org: {monthly: 1000}
    agent_defaults: {daily: 10%s}
"""
NAMES = spec.Names("synthorg")
ALERTS = spec.Alerts("synthorg")


def _limits(default: str = "", cto: str = "", later: str = "", extra: str = "") -> Limits:
    return parse_limits(extra + BASE % (default, cto, later), "limits.yaml")


def _group(limits: Limits, file: str, suffix: str) -> list[dict[str, Any]]:
    groups = yaml.safe_load(render_rule_files(limits, "limits.yaml")[file])["groups"]
    (group,) = [g for g in groups if g["name"] == f"synthorg-budget-{suffix}"]
    rules: list[dict[str, Any]] = group["rules"]
    return rules


def _records(limits: Limits) -> dict[str, str]:
    return {
        r["record"]: r["expr"]
        for suffix in ("task-cost", "coverage")
        for r in _group(limits, RECORDING_FILE, suffix)
    }


def test_task_cost_and_coverage_are_groups_with_their_own_heartbeat() -> None:
    limits = _limits(", per_task: 1")
    task_cost = {r["record"] for r in _group(limits, RECORDING_FILE, "task-cost")}
    coverage = {r["record"] for r in _group(limits, RECORDING_FILE, "coverage")}
    assert NAMES.task_cost_histogram.heartbeat in task_cost
    assert NAMES.calls_counter.heartbeat in coverage
    assert NAMES.task_cost_histogram.heartbeat != NAMES.calls_counter.heartbeat
    assert NAMES.agent_coverage in coverage and NAMES.agent_coverage not in task_cost


def _alert(limits: Limits, name: str) -> dict[str, Any]:
    (alert,) = [a for a in _group(limits, ALERTS_FILE, "task-cost-alerts") if a["alert"] == name]
    return alert


def test_one_fraction_term_per_distinct_per_task_limit_over_all_revisions() -> None:
    limits = _limits(", per_task: 2", ", per_task: 0.35", ", per_task: 2")
    increase = _records(limits)[f"{NAMES.task_cost_histogram.level}:increase"]
    # 2 appears twice in the file but is one value; 0.35 is not a bucket edge and still a term
    assert increase.count("histogram_fraction(") == 2
    assert "histogram_fraction(0.35, +Inf," in increase
    assert "histogram_fraction(2, +Inf," in increase
    assert f"{NAMES.agent_per_task_limit} == 0.35" in increase


def test_without_per_task_limits_nothing_reads_the_histogram() -> None:
    records = _records(_limits())
    assert not any(NAMES.task_cost in expr for expr in records.values())
    # the published series and the alert exist, and stay empty
    assert NAMES.agent_tasks_over_limit_day_to_date in records
    assert _alert(_limits(), ALERTS.task_over_budget)


def test_a_process_with_a_new_histogram_waits_for_the_cost_rules_verdict() -> None:
    delta = _records(_limits(", per_task: 1"))[f"{NAMES.task_cost_histogram.level}:delta"]
    # known to the cost rules one evaluation back, and not an agent with a partial figure
    assert f"{NAMES.cost_counter.level}:last offset 1m" in delta
    assert f"{NAMES.partial_since(spec.MONTHLY)} offset 1m" in delta


def test_coverage_counts_priced_and_unpriced_calls_only() -> None:
    records = _records(_limits())
    total = records[f"{NAMES.calls_counter.level}:sum"]
    assert f'{NAMES.call_outcome}=~"priced|unpriced"' in total
    assert "failed" not in total
    assert f'{NAMES.call_outcome}="priced"' in records[NAMES.agent_coverage]
    assert NAMES.org_coverage in records


def test_alert_thresholds_come_from_the_limits_file() -> None:
    extra = "task_limit: {max_over_limit_per_hour: 3}\ncoverage: {min_percent: 90, for: 30m}\n"
    limits = _limits(", per_task: 1", extra=extra)
    over = _alert(limits, ALERTS.task_over_budget)
    assert ") > 3\n" in over["expr"]
    assert over["labels"] == {"severity": "warning"}
    coverage = _alert(limits, ALERTS.coverage_low)
    assert coverage["expr"] == f"{NAMES.agent_coverage} < 0.9"
    assert coverage["for"] == "30m"
    # defaults
    default = _alert(_limits(", per_task: 1"), ALERTS.coverage_low)
    assert default["expr"].endswith("< 0.95") and default["for"] == "15m"
    assert ") > 0\n" in _alert(_limits(", per_task: 1"), ALERTS.task_over_budget)["expr"]
