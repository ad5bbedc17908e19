"""End to end: a ledger of events from two app processes, read back from every contract series.

The app side is BudgetTelemetry in two real processes of the same service (replicas), pushing
OTLP/HTTP to our collector, which remote-writes into Prometheus, whose recording rules come
from tests/e2e/limits-e2e.yaml. Costs are binary fractions, so every sum is exact in floating
point: the comparison tolerance (1e-9 relative) only absorbs the division in the percents.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Callable

import pytest
from tests.support.pipeline import App, Pipeline, start_app

pytestmark = pytest.mark.e2e

REL = 1e-9

# (process, agent, cost, provider, model, input tokens, output tokens)
COSTS = [
    (0, "ceo", 0.5, "anthropic", "claude-sonnet-4", 1000, 200),
    (0, "ceo", 0.5, "anthropic", "claude-sonnet-4", 1000, 200),
    (0, "ceo", 0.5, "anthropic", "claude-opus-4", 500, 100),
    (0, "cto", 1.25, "openai", "gpt-5", 3000, 700),
    (0, "cto", 1.25, "openai", "gpt-5", 3000, 700),
    (0, "eng-1", 0.375, "anthropic", "claude-sonnet-4", 400, 40),
    (1, "cto", 0.75, "anthropic", "claude-sonnet-4", 800, 80),
    (1, "eng-2", 2.5, "openai", "gpt-5", 2500, 250),
    (1, "auditor", 3.0, "anthropic", "claude-opus-4", 6000, 600),
    (1, "eng-1", 0.125, "openai", "gpt-5-mini", 100, 10),
    (1, "eng-1", 0.125, "openai", "gpt-5-mini", 100, 10),
    (1, "eng-1", 0.125, "openai", "gpt-5-mini", 100, 10),
    (1, "eng-1", 0.125, "openai", "gpt-5-mini", 100, 10),
]
# (process, agent, status); None = a task nobody is assigned to yet.
TASKS = [
    (0, None, "created"),
    (0, None, "created"),
    (1, None, "created"),
    (0, "ceo", "assigned"),
    (0, "ceo", "completed"),
    (0, "cto", "in_progress"),
    (1, "cto", "in_progress"),
    (1, "eng-1", "blocked"),
    (1, "eng-2", "failed"),
]
# (process, agent, outcome, input, output): calls whose cost is unknown or that failed.
CALLS = [(1, "eng-2", "unpriced", 100, 50), (0, "cto", "failed", 0, 0)]

DAILY = {"ceo": 10.0, "cto": 20.0, "eng-1": 10.0, "eng-2": 10.0}  # auditor is exempt
MONTHLY = {"cto": 300.0}  # agent_defaults.monthly is null


def _close(a: float | None, b: float) -> bool:
    return a is not None and math.isclose(a, b, rel_tol=REL, abs_tol=1e-12)


def _equals(expected: float) -> Callable[[float | None], bool]:
    return lambda value: _close(value, expected)


def _per_agent_cost() -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for _, agent, cost, *_ in COSTS:
        out[agent] += cost
    return dict(out)


def _by(pipe: Pipeline, promql: str, *labels: str) -> dict[tuple[str, ...], float]:
    return {
        tuple(item["metric"].get(label, "") for label in labels): float(item["value"][1])
        for item in pipe.prometheus.query(promql)
    }


@pytest.fixture(scope="module")
def apps(pipe: Pipeline) -> list[App]:
    started = [pipe.app(), pipe.app()]
    assert started[0].instance_id != started[1].instance_id
    for proc, agent, cost, provider, model, tin, tout in COSTS:
        started[proc].cost(
            agent, cost, provider=provider, model=model, input_tokens=tin, output_tokens=tout
        )
    for proc, assignee, status in TASKS:
        started[proc].task(assignee, status)
    for proc, agent, outcome, tin, tout in CALLS:
        started[proc].send(
            "call", agent=agent, outcome=outcome, input_tokens=tin, output_tokens=tout
        )
    for app in started:
        app.flush()
    expected = _per_agent_cost()
    for agent, total in expected.items():
        pipe.wait_value(
            f'synthorg_agent_cost_day_to_date{{gen_ai_agent_id="{agent}"}}',
            _equals(total),
            timeout=90,
        )
    # The task and call rules are another group, evaluated on their own schedule.
    pipe.wait_value("sum(synthorg_agent_tasks_day_to_date)", lambda v: v == len(TASKS), timeout=60)
    pipe.wait_value("sum(synthorg_calls_total)", lambda v: v == len(COSTS) + len(CALLS), timeout=60)
    return started


def test_raw_counters_match_each_process_ledger(pipe: Pipeline, apps: list[App]) -> None:
    got = _by(
        pipe,
        "sum by (instance, job, gen_ai_agent_id) (synthorg_cost_total)",
        "instance",
        "job",
        "gen_ai_agent_id",
    )
    expected: dict[tuple[str, ...], float] = defaultdict(float)
    for proc, agent, cost, *_ in COSTS:
        expected[(apps[proc].instance_id, "synthorg", agent)] += cost
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert _close(got[key], value), (key, got[key], value)

    tokens = _by(
        pipe,
        "sum by (gen_ai_agent_id, gen_ai_token_type) (synthorg_tokens_total)",
        "gen_ai_agent_id",
        "gen_ai_token_type",
    )
    want: Counter[tuple[str, str]] = Counter()
    for _, agent, _, _, _, tin, tout in COSTS:
        want[(agent, "input")] += tin
        want[(agent, "output")] += tout
    for _, agent, _, tin, tout in CALLS:  # unpriced and failed calls still used tokens
        want[(agent, "input")] += tin
        want[(agent, "output")] += tout
    assert {k: v for k, v in tokens.items() if v} == {k: float(v) for k, v in want.items() if v}

    # Provider and model survive the trip as labels.
    by_model = _by(
        pipe,
        "sum by (gen_ai_provider_name, gen_ai_request_model) (synthorg_cost_total)",
        "gen_ai_provider_name",
        "gen_ai_request_model",
    )
    want_model: dict[tuple[str, ...], float] = defaultdict(float)
    for _, _, cost, provider, model, _, _ in COSTS:
        want_model[(provider, model)] += cost
    assert {k: v for k, v in by_model.items() if v} == want_model


def test_calls_are_counted_by_outcome(pipe: Pipeline, apps: list[App]) -> None:
    got = _by(
        pipe, "sum by (synthorg_call_outcome) (synthorg_calls_total)", "synthorg_call_outcome"
    )
    assert got == {("priced",): float(len(COSTS)), ("unpriced",): 1.0, ("failed",): 1.0}


def test_day_and_period_to_date_match_the_ledger(pipe: Pipeline, apps: list[App]) -> None:
    expected = _per_agent_cost()
    day = _by(pipe, "synthorg_agent_cost_day_to_date", "gen_ai_agent_id")
    period = _by(pipe, "synthorg_agent_cost_period_to_date", "gen_ai_agent_id")
    # Everything was spent today, inside the current billing period.
    for got in (day, period):
        assert got.keys() == {(a,) for a in expected}
        for agent, total in expected.items():
            assert _close(got[(agent,)], total), (agent, got[(agent,)], total)
    org = sum(expected.values())
    assert _close(pipe.value("synthorg_cost_day_to_date"), org)
    assert _close(pipe.value("synthorg_cost_period_to_date"), org)


def test_limits_and_percents_match_the_ledger(pipe: Pipeline, apps: list[App]) -> None:
    spent = _per_agent_cost()
    # Revision 2 starts in 2099: revision 1 is in force.
    assert _by(pipe, "synthorg_budget_limits_info", "revision") == {("1",): 1.0}
    assert pipe.value("synthorg_budget_daily_limit") == 50.0
    assert pipe.value("synthorg_budget_monthly_limit") == 1000.0

    daily_limits = _by(pipe, "synthorg_agent_budget_daily_limit", "gen_ai_agent_id")
    # Defaults apply to every agent seen; exempt agents have none. Listed agents that were
    # not seen may have a limit series too, so only the seen ones are compared.
    seen = {(a,): DAILY[a] for a in spent if a in DAILY}
    assert {k: v for k, v in daily_limits.items() if k[0] in spent} == seen
    assert ("auditor",) not in daily_limits
    monthly_limits = _by(pipe, "synthorg_agent_budget_monthly_limit", "gen_ai_agent_id")
    assert {k: v for k, v in monthly_limits.items() if k[0] in spent} == {("cto",): 300.0}

    daily_pct = _by(pipe, "synthorg_agent_budget_used_percent", "gen_ai_agent_id")
    assert {k for k in daily_pct if k[0] in spent} == {(a,) for a in DAILY}
    for agent, limit in DAILY.items():
        assert _close(daily_pct[(agent,)], spent[agent] / limit * 100), agent
    monthly_pct = _by(pipe, "synthorg_agent_budget_monthly_used_percent", "gen_ai_agent_id")
    assert {k for k in monthly_pct if k[0] in spent} == {("cto",)}
    assert _close(monthly_pct[("cto",)], spent["cto"] / 300 * 100)

    org = sum(spent.values())
    assert _close(pipe.value("synthorg_budget_daily_used_percent"), org / 50 * 100)
    assert _close(pipe.value("synthorg_budget_used_percent"), org / 1000 * 100)


def test_task_counts_match_the_ledger(pipe: Pipeline, apps: list[App]) -> None:
    expected: Counter[tuple[str, str]] = Counter(
        (agent or "_unassigned", status) for _, agent, status in TASKS
    )
    day = _by(pipe, "synthorg_agent_tasks_day_to_date", "gen_ai_agent_id", "synthorg_task_status")
    assert {k: v for k, v in day.items() if v} == {k: float(v) for k, v in expected.items()}
    raw = _by(
        pipe,
        "sum by (gen_ai_agent_id, synthorg_task_status) (synthorg_tasks_total)",
        "gen_ai_agent_id",
        "synthorg_task_status",
    )
    assert {k: v for k, v in raw.items() if v} == {k: float(v) for k, v in expected.items()}


def test_freshness_from_record_cost_to_day_to_date(pipe: Pipeline, apps: list[App]) -> None:
    """Seconds from record_cost (periodic export, no flush) to the recorded series moving."""
    query = 'synthorg_agent_cost_day_to_date{gen_ai_agent_id="eng-2"}'
    samples = []
    for _ in range(3):
        before = pipe.value(query)
        assert before is not None
        started = time.monotonic()
        apps[1].cost("eng-2", 0.25, provider="openai", model="gpt-5")
        pipe.wait_value(
            query,
            _equals(before + 0.25),
            timeout=120,
            what="freshness: eng-2 day-to-date",
        )
        samples.append(time.monotonic() - started)
    print(
        f"\nFRESHNESS record_cost -> synthorg_agent_cost_day_to_date: "
        f"median {statistics.median(samples):.2f}s, max {max(samples):.2f}s "
        f"(samples {', '.join(f'{s:.2f}' for s in samples)}; export 0.5s, batch 1s, "
        f"rule interval 1s)"
    )
    assert max(samples) < 120


def test_an_app_pushing_over_grpc_gets_through_too(pipe: Pipeline, apps: list[App]) -> None:
    # Runs last: it adds spend the org-level checks above do not expect.
    app = start_app(
        pipe.workdir / "apps",
        pipe.collector.otlp_grpc,
        service="synthorg-grpc",
        extra={"protocol": "grpc"},
    )
    pipe.apps.append(app)
    app.cost("grpc-agent", 0.625, provider="openai", model="gpt-5")
    app.task("grpc-agent", "completed")
    app.flush()
    pipe.wait_value(
        'synthorg_agent_cost_day_to_date{gen_ai_agent_id="grpc-agent"}', _equals(0.625), timeout=60
    )
    [series] = pipe.prometheus.query('synthorg_cost_total{gen_ai_agent_id="grpc-agent"}')
    assert series["metric"]["job"] == "synthorg-grpc"
    assert series["metric"]["instance"] == app.instance_id
    app.shutdown()
