"""The cost-per-task panels' queries on a native histogram with known tasks, run by the real
promtool (Prometheus's own engine, native histograms included).

The queries come from the rendered dashboards, with Grafana's variables filled in: a change to
a panel's query is checked here. The expected values are computed by hand from the tasks
below and Prometheus's interpolation inside a native histogram's exponential buckets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from budgetwatch.dashboards import render_dashboards
from budgetwatch.dev.panel_queries import expand_variables
from budgetwatch.dev.stack import ROOT, run_tool
from budgetwatch.limits import load_limits

# Schema 0: bucket k holds costs in (2^(k-1), 2^k], e.g. offset 0 is (0.5, 1], 1 is (1, 2].
# cto finished three completed tasks (0.75, 1.5, 3.0) and one failed task (3.5) in the first
# minute; intern's process exported its empty histogram only (no task finished).
ZERO = "{{schema:0 sum:0 count:0}}"
COMPLETED = "{{schema:0 sum:5.25 count:3 buckets:[1 1 1]}}"
FAILED = "{{schema:0 sum:3.5 count:1 offset:2 buckets:[1]}}"
SERIES = {
    'synthorg_task_cost{gen_ai_agent_id="cto", synthorg_task_status="completed", '
    'job="app", instance="a"}': f"{ZERO} {COMPLETED} {COMPLETED}",
    'synthorg_task_cost{gen_ai_agent_id="cto", synthorg_task_status="failed", '
    'job="app", instance="a"}': f"{ZERO} {FAILED} {FAILED}",
    'synthorg_task_cost{gen_ai_agent_id="intern", synthorg_task_status="completed", '
    'job="app", instance="b"}': f"{ZERO} {ZERO} {ZERO}",
}
# cto's four tasks by bucket: (0.5, 1]: 1, (1, 2]: 1, (2, 4]: 2. A quantile q has rank 4q; in
# its bucket (lo, hi] holding n tasks after c below it, Prometheus returns
# lo * (hi / lo) ** ((rank - c) / n).
MEDIAN = 2.0  # rank 2: bucket (1, 2], c=1, n=1: 1 * 2 ** 1
P90 = 2 * 2**0.8  # rank 3.6: bucket (2, 4], c=2, n=2: 2 * 2 ** 0.8
MAX_BUCKET = 4.0  # rank 4: the top of (2, 4]; the dearest task cost 3.5, at most 4
TASKS = 4.0
RANGE_S = 600


def _panel(dashboard: dict[str, Any], title: str) -> dict[str, Any]:
    return next(p for p in dashboard["panels"] if p["title"] == title and p["type"] != "row")


def _expr(target: dict[str, Any], agent: str = ".*") -> str:
    return expand_variables(
        target["expr"],
        range_s=RANGE_S,
        interval_s=15,
        rate_interval_s=60,
        variables={"agent": agent, "provider": ".*", "model": ".*"},
    )


def test_cost_per_task_panels_on_a_native_histogram(tmp_path: Path) -> None:
    files = render_dashboards(load_limits(ROOT / "limits.yaml"), "limits.yaml")
    overview = yaml.safe_load(files["budget-overview.json"])
    detail = yaml.safe_load(files["budget-agent-detail.json"])
    table = _panel(overview, "Cost per task by agent")["targets"]
    stat = _panel(detail, "Cost per task")["targets"]
    expected = [TASKS, MEDIAN, P90, MAX_BUCKET]
    cases = [
        # Overview table: tasks, median, p90, max bucket; intern (no task) has no row.
        *((_expr(t), value) for t, value in zip(table[:4], expected, strict=True)),
        # Agent detail for cto: median, p90, max bucket.
        *((_expr(t, "cto"), value) for t, value in zip(stat[:3], expected[1:], strict=True)),
    ]
    assert len(cases) == 7
    tests = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in SERIES.items()],
                "promql_expr_test": [
                    {
                        "expr": expr,
                        "eval_time": "2m",
                        "exp_samples": [{"labels": '{gen_ai_agent_id="cto"}', "value": value}],
                    }
                    for expr, value in cases
                ],
            }
        ],
    }
    path = tmp_path / "task-cost-panels.yml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    result = run_tool("promtool", "test", "rules", path, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
