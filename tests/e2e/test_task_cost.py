"""End to end: cost per task, from record_cost/record_task to a Prometheus native histogram.

A real app process records tasks of known cost (several calls each, two agents, a failed and
a cancelled task, a task that made no call) through BudgetTelemetry -> our collector (the
shipped otel-collector/config.yaml) -> Prometheus 3 (remote-write receiver, no feature flag).
The SDK's base-2 exponential histogram must arrive as the native histogram `<ns>_task_cost`
with the agent and terminal status as labels, and PromQL must answer from it:
histogram_count/histogram_sum exactly, the count of tasks over a limit X that is not a power
of two (tasks just under and just over it), the count at or under a power of two (a bucket
edge: a task costing exactly 2.0 is at or under 2.0), tasks that cost 0 (the zero bucket),
and the median and p90 within a bucket.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import pytest
from tests.support.genai import start_genai_collector
from tests.support.pipeline import App, Pipeline, start_app

from budgetwatch.dev.stack import ROOT
from budgetwatch.spec import AGENT, Names

pytestmark = pytest.mark.e2e

NAMES = Names("synthorg")
X = 1.5  # a limit between two tasks: not a power of two
POW2 = 2.0

# task id -> (agent, final status, costs of its calls, a non-terminal status first?)
TASKS: dict[str, tuple[str, str, list[float], bool]] = {
    "a-under": ("tc-alpha", "completed", [0.5, 0.75, 0.2], False),  # 1.45: just under X
    "a-over": ("tc-alpha", "completed", [1.0, 0.55], True),  # 1.55: just over X
    "a-pow2": ("tc-alpha", "completed", [1.5, 0.5], False),  # 2.0: on a bucket edge
    "a-big": ("tc-alpha", "completed", [3.0, 1.25], False),  # 4.25
    "a-nocall": ("tc-alpha", "completed", [], True),  # made no call: 0
    "a-fail": ("tc-alpha", "failed", [0.1, 0.2], False),  # 0.3
    "b-tiny": ("tc-beta", "completed", [0.01, 0.02], False),  # 0.03
    "b-huge": ("tc-beta", "completed", [5.0, 5.0], False),  # 10.0
    "b-over": ("tc-beta", "completed", [1.0, 0.6], True),  # 1.6
    "b-cancel": ("tc-beta", "cancelled", [0.8], False),  # 0.8
}
# Hand-computed truth per (agent, status): the task totals above.
TRUTH: dict[tuple[str, str], list[float]] = {
    ("tc-alpha", "completed"): [1.45, 1.55, 2.0, 4.25, 0.0],
    ("tc-alpha", "failed"): [0.3],
    ("tc-beta", "completed"): [0.03, 10.0, 1.6],
    ("tc-beta", "cancelled"): [0.8],
}


def _selector(agent: str, status: str) -> str:
    return f'{NAMES.task_cost}{{{AGENT}="{agent}", {NAMES.task_status}="{status}"}}'


@pytest.fixture(scope="module")
def app(pipe: Pipeline) -> App:
    app = pipe.app(service="taskcost")
    # Interleave the tasks' calls: sums must not depend on order or on other tasks.
    for task_id, (agent, _, _, touch) in TASKS.items():
        if touch:
            app.task(agent, "in_progress", task_id=task_id)
    longest = max(len(costs) for _, _, costs, _ in TASKS.values())
    for i in range(longest):
        for task_id, (agent, _, costs, _) in TASKS.items():
            if i < len(costs):
                app.cost(agent, costs[i], provider="anthropic", model="m", task_id=task_id)
    for task_id, (agent, status, _, _) in TASKS.items():
        app.task(agent, status, task_id=task_id)
    # Coverage: beta also made two calls of a model without a price, and one that failed.
    for outcome in ("unpriced", "unpriced", "failed"):
        app.send("call", agent="tc-beta", outcome=outcome, provider="acme", model="new-model")
    app.flush()
    for (agent, status), totals in TRUTH.items():
        count = len(totals)
        pipe.wait_value(
            f"histogram_count({_selector(agent, status)})",
            lambda v, n=count: v == n,
            what=f"task count of {agent}/{status}",
        )
    return app


def test_the_histogram_arrives_as_a_native_histogram_with_its_labels(
    pipe: Pipeline, app: App
) -> None:
    result = pipe.prometheus.query(NAMES.task_cost)
    by_key = {(r["metric"][AGENT], r["metric"][NAMES.task_status]): r for r in result}
    assert set(by_key) == set(TRUTH)
    for series in result:
        assert "histogram" in series, f"not a native histogram: {series}"
        # The exporter's scope labels are on every budgetwatch series, counters too.
        assert set(series["metric"]) == {
            "__name__",
            AGENT,
            NAMES.task_status,
            "job",
            "instance",
            "otel_scope_name",
            "otel_scope_version",
        }
        assert series["metric"]["job"] == "taskcost"
        assert series["metric"]["instance"] == app.instance_id
    # No classic-histogram series beside it.
    assert pipe.prometheus.query(f'{{__name__=~"{NAMES.task_cost}_(bucket|count|sum)"}}') == []


def test_each_series_is_first_an_empty_histogram(pipe: Pipeline, app: App) -> None:
    """Contract section 2 for the histogram too: a rule taking increase() over the series
    counts its first tasks only if its first sample is empty."""
    for agent, status in TRUTH:
        [series] = pipe.prometheus.query(f"{_selector(agent, status)}[5m]")
        first = series["histograms"][0][1]
        assert (first["count"], first["sum"]) == ("0", "0"), (agent, status, first)
        assert int(series["histograms"][-1][1]["count"]) == len(TRUTH[agent, status])


def test_count_and_sum_per_agent_and_status(pipe: Pipeline, app: App) -> None:
    for (agent, status), totals in TRUTH.items():
        sel = _selector(agent, status)
        assert pipe.value(f"histogram_count({sel})") == len(totals)
        total = pipe.value(f"histogram_sum({sel})")
        assert total is not None and math.isclose(total, sum(totals), rel_tol=1e-12)


def test_tasks_over_a_limit_that_is_not_a_power_of_two(pipe: Pipeline, app: App) -> None:
    # alpha: 1.55, 2.0, 4.25 are over 1.5 (1.45 just under, 0 far under); beta: 10.0 and 1.6.
    expected = {"tc-alpha": 3, "tc-beta": 2}
    for agent, over in expected.items():
        sel = _selector(agent, "completed")
        got = pipe.value(f"histogram_count({sel}) * histogram_fraction({X}, +Inf, {sel})")
        assert got is not None and math.isclose(got, over, abs_tol=1e-9), (agent, got)
        under = pipe.value(f"histogram_count({sel}) * histogram_fraction(-Inf, {X}, {sel})")
        total = len(TRUTH[agent, "completed"])
        assert under is not None and math.isclose(under, total - over, abs_tol=1e-9)


def test_a_task_costing_exactly_a_power_of_two_is_at_or_under_it(pipe: Pipeline, app: App) -> None:
    # Bucket upper bounds are inclusive and 2.0 is an edge at every scale: 0, 1.45, 1.55 and
    # 2.0 are at or under 2.0, 4.25 is over.
    sel = _selector("tc-alpha", "completed")
    assert pipe.value(f"histogram_count({sel}) * histogram_fraction(-Inf, {POW2}, {sel})") == 4
    assert pipe.value(f"histogram_count({sel}) * histogram_fraction({POW2}, +Inf, {sel})") == 1


def test_zero_cost_tasks_sit_in_the_zero_bucket_which_straddles_zero(
    pipe: Pipeline, app: App
) -> None:
    """A task that cost 0 lands in the native histogram's zero bucket [-z, z] (z = 1e-128),
    which Prometheus takes as evenly spread around 0: histogram_fraction(0, X) counts half of
    it below 0. Over-limit counts must use histogram_fraction(X, +Inf) (or (-Inf, X)), which
    count it wholly under any positive X."""
    sel = _selector("tc-alpha", "completed")
    count = f"histogram_count({sel})"
    assert pipe.value(f"{count} * histogram_fraction(-Inf, 0.001, {sel})") == 1
    assert pipe.value(f"{count} * histogram_fraction(0.001, +Inf, {sel})") == 4
    # The pitfall, pinned: "not under X from 0" counts 3.5 tasks over 1.5, not 3.
    assert pipe.value(f"{count} * (1 - histogram_fraction(0, {X}, {sel}))") == 3.5


def test_quantiles_within_one_bucket_of_the_truth(pipe: Pipeline, app: App) -> None:
    for key, totals in TRUTH.items():
        if len(totals) < 3:
            continue
        ranked = sorted(totals)
        sel = _selector(*key)
        growth = _bucket_growth(pipe.prometheus.query(sel)[0])
        for q in (0.5, 0.9):
            # Prometheus's rank: the bucket holding observation ceil(q * count).
            truth = ranked[math.ceil(q * len(ranked)) - 1]
            got = pipe.value(f"histogram_quantile({q}, {sel})")
            assert got is not None and truth / growth <= got <= truth * growth, (
                key,
                q,
                got,
                truth,
            )


def test_finer_buckets_for_closer_costs(pipe: Pipeline, app: App) -> None:
    """alpha's costs span 1.6 octaves: Prometheus's finest scale (8, 0.27 % buckets); beta's
    span 8.4 octaves: the SDK keeps scale 6 (1.09 %) within its 1,024 buckets."""
    alpha = _bucket_growth(pipe.prometheus.query(_selector("tc-alpha", "completed"))[0])
    beta = _bucket_growth(pipe.prometheus.query(_selector("tc-beta", "completed"))[0])
    assert math.isclose(alpha, 2 ** (2**-8), rel_tol=1e-9)
    assert math.isclose(beta, 2 ** (2**-6), rel_tol=1e-9)


# --- through the recording rules (rendered from tests/e2e/limits-e2e.yaml): per-task limits
# tc-alpha 1.5 (not a bucket edge), tc-beta 2 (an edge).
OVER_LIMIT = {"tc-alpha": 3.0, "tc-beta": 1.0}  # alpha: 1.55, 2.0, 4.25; beta: 10.0


def test_the_rules_count_the_tasks_over_each_agents_per_task_limit(
    pipe: Pipeline, app: App
) -> None:
    for agent, over in OVER_LIMIT.items():
        pipe.wait_value(
            f'{NAMES.agent_tasks_over_limit_day_to_date}{{{AGENT}="{agent}"}}',
            lambda v, n=over: v is not None and math.isclose(v, n, abs_tol=1e-9),
            what=f"over-limit tasks of {agent}",
        )
    limits = pipe.values(f"{NAMES.agent_per_task_limit}{{{AGENT}=~'tc-.*'}}")
    assert sorted(limits.values()) == [1.5, 2.0]


def test_the_rules_give_the_share_of_priced_calls(pipe: Pipeline, app: App) -> None:
    # alpha: 11 priced calls, none unpriced; beta: 7 priced, 2 unpriced (the failed one counts
    # on neither side).
    priced = {"tc-alpha": 11, "tc-beta": 7}
    assert {a: sum(len(c) for ag, _, c, _ in TASKS.values() if ag == a) for a in priced} == priced
    truth = {"tc-alpha": 1.0, "tc-beta": 7 / 9}
    for agent, ratio in truth.items():
        pipe.wait_value(
            f'{NAMES.agent_coverage}{{{AGENT}="{agent}"}}',
            lambda v, r=ratio: v is not None and math.isclose(v, r, rel_tol=1e-9),
            what=f"coverage of {agent}",
        )
    org = pipe.value(NAMES.org_coverage)
    assert org is not None and 0 < org < 1


def _bucket_growth(series: dict[str, Any]) -> float:
    """upper / lower of the positive buckets of a native histogram query result."""
    buckets = series["histogram"][1]["buckets"]
    ratios: dict[float, int] = defaultdict(int)
    for _, lower, upper, _ in buckets:
        lo, hi = float(lower), float(upper)
        if lo > 0:
            ratios[round(hi / lo, 12)] += 1
    assert len(ratios) == 1, f"buckets of mixed widths: {buckets}"
    return next(iter(ratios))


def test_the_sources_pipelines_pass_the_histogram_through_untouched(
    pipe: Pipeline, app: App
) -> None:
    """With sources.yaml merged (GenAI pipelines: agentcap, zerofirst, transforms, filters),
    the base pipeline still carries the histogram, once, unchanged: the genai pipelines keep
    only GenAI metrics, and zerofirst/agentcap would not touch an exponential histogram."""
    workdir = pipe.workdir / "sources"
    collector = start_genai_collector(
        workdir / "otelcol",
        f"{pipe.prometheus.url}/api/v1/write",
        ROOT / "otel-collector" / "pricing.yaml",
    )
    try:
        app = start_app(workdir / "apps", collector.otlp_http, service="taskcost-sources")
        try:
            for task_id, (agent, status, costs, _) in TASKS.items():
                for cost in costs:
                    app.cost(f"src-{agent}", cost, task_id=task_id)
                app.task(f"src-{agent}", status, task_id=task_id)
            app.flush()
            for (agent, status), totals in TRUTH.items():
                sel = _selector(f"src-{agent}", status)
                count = len(totals)
                pipe.wait_value(f"histogram_count({sel})", lambda v, n=count: v == n)
                total = pipe.value(f"histogram_sum({sel})")
                assert total is not None and math.isclose(total, sum(totals), rel_tol=1e-12)
                [series] = pipe.prometheus.query(f"{sel}[5m]")
                assert series["histograms"][0][1]["count"] == "0"  # still empty first
            # The same buckets as through the base config alone.
            for agent in ("tc-alpha", "tc-beta"):
                base = pipe.prometheus.query(_selector(agent, "completed"))[0]
                merged = pipe.prometheus.query(_selector(f"src-{agent}", "completed"))[0]
                assert merged["histogram"][1]["buckets"] == base["histogram"][1]["buckets"]
        finally:
            app.kill()
    finally:
        collector.server.stop()
