"""Budgets from other OpenTelemetry GenAI sources, end to end (docs/sources.md).

Real source processes (LiteLLM's own OTel callback with mock_response; OpenLIT instrumenting
the OpenAI client against a local fake server; the OTel SDK recording tokens only; spans with
the proposed cost attributes) push OTLP to our real collector running the shipped
config.yaml + sources.yaml + pricing statements rendered from a test price table, into a real
Prometheus evaluating the rules rendered from tests/e2e/limits-e2e.yaml. Every expected
figure is worked out by hand from the calls (or, for LiteLLM, is LiteLLM's own
`response_cost` of each call, checked by hand against its price map).

Each test uses its own agent ids and service names, so the tests share one stack.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from tests.support.genai import GenAIStack, genai_stack

pytestmark = pytest.mark.e2e

LIMITS = Path(__file__).with_name("limits-e2e.yaml")
# The test prices: binary fractions, so that sums of priced tokens are exact.
TOK1_IN, TOK1_OUT = 2.0**-7, 2.0**-6  # acme/tok-1
TOK2_OLD_IN, TOK2_OLD_OUT = 2.0**-9, 2.0**-8  # acme/tok-2 until the change
TOK2_NEW_IN, TOK2_NEW_OUT = 2.0**-7, 2.0**-6  # acme/tok-2 from the change on
# gpt-4o-mini in LiteLLM 1.110.2's bundled map: 1.5e-07 per input, 6e-07 per output token;
# a mock_response call counts 10 input and 20 output tokens: 1.35e-05 per call.
LITELLM_CALL_COST = 10 * 1.5e-07 + 20 * 6e-07
SKIPPED_JOB = "both-app"
CHANGE_AFTER_S = 40.0


def close(a: float | None, b: float) -> bool:
    return a is not None and abs(a - b) <= 1e-9 * max(1.0, abs(b))


@pytest.fixture(scope="module")
def price_change_at() -> float:
    return float(int(time.time() + CHANGE_AFTER_S))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, price_change_at: float) -> Iterator[GenAIStack]:
    workdir = tmp_path_factory.mktemp("genai")
    change = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(price_change_at))
    prices = workdir / "prices-e2e.yaml"
    prices.write_text(
        "apiVersion: budgetwatch/v1\nkind: PriceTable\ncurrency: USD\nprices:\n"
        f"  - {{provider: acme, model: tok-1, input: {TOK1_IN}, output: {TOK1_OUT}, "
        "effective_from: 2026-01-01T00:00:00Z}\n"
        f"  - {{provider: acme, model: tok-2, input: {TOK2_OLD_IN}, output: {TOK2_OLD_OUT}, "
        "effective_from: 2026-01-01T00:00:00Z}\n"
        f"  - {{provider: acme, model: tok-2, input: {TOK2_NEW_IN}, output: {TOK2_NEW_OUT}, "
        f"effective_from: {change}}}\n"
    )
    with genai_stack(
        workdir, LIMITS, prices, env={"BUDGETWATCH_GENAI_SKIP_JOBS": f"^{SKIPPED_JOB}$"}
    ) as s:
        yield s


def wait_for(stack: GenAIStack, promql: str, expected: float, timeout: float = 60) -> float:
    deadline = time.monotonic() + timeout
    last: float | None = None
    while time.monotonic() < deadline:
        values = list(stack.values(promql).values())
        last = sum(values) if values else None
        if close(last, expected):
            return expected
        time.sleep(0.5)
    raise AssertionError(f"{promql}: expected {expected}, last {last}\n{stack.logs()}")


def dtd(agent: str) -> str:
    return f'synthorg_agent_cost_day_to_date{{gen_ai_agent_id="{agent}"}}'


def ptd(agent: str) -> str:
    return f'synthorg_agent_cost_period_to_date{{gen_ai_agent_id="{agent}"}}'


def tokens_call(agent_key: str | None, agent: str | None, model: str, i: int, o: int) -> dict:
    attributes = {"gen_ai.provider.name": "acme", "gen_ai.request.model": model}
    if agent_key and agent:
        attributes[agent_key] = agent
    return {"attributes": attributes, "input": i, "output": o}


def test_token_prices_apply_from_their_effective_time_only(
    stack: GenAIStack, price_change_at: float
) -> None:
    """tok-2 changes price at `price_change_at`: tokens counted before stay at the old price."""
    done = stack.run_source(
        {
            "source": "tokens",
            "service": "agent-sdk",
            "instance": str(uuid.uuid4()),
            "steps": [
                {"calls": [tokens_call("gen_ai.agent.name", "tk-pricer", "tok-2", 100, 10)]},
                {
                    "sleep_until": price_change_at + 2,
                    "calls": [tokens_call("gen_ai.agent.name", "tk-pricer", "tok-2", 100, 10)],
                },
            ],
        },
        timeout=CHANGE_AFTER_S + 60,
    )
    assert done[1]["flushed_at"] < price_change_at, "the first push came after the price change"
    before = 100 * TOK2_OLD_IN + 10 * TOK2_OLD_OUT  # 0.1953125 + 0.0390625
    after = 100 * TOK2_NEW_IN + 10 * TOK2_NEW_OUT  # 0.78125 + 0.15625
    assert before + after == 1.171875
    wait_for(stack, dtd("tk-pricer"), 1.171875)
    wait_for(stack, ptd("tk-pricer"), 1.171875)
    # the tokens themselves, and the calls counted as priced
    wait_for(stack, 'synthorg_tokens_total{gen_ai_agent_id="tk-pricer"}', 220)
    wait_for(
        stack,
        'synthorg_calls_total{gen_ai_agent_id="tk-pricer",synthorg_call_outcome="priced"}',
        2,
    )


def test_token_only_source_unpriced_model_and_missing_agent(stack: GenAIStack) -> None:
    done = stack.run_source(
        {
            "source": "tokens",
            "service": "agent-sdk-2",
            "instance": str(uuid.uuid4()),
            "steps": [
                {
                    "calls": [
                        tokens_call("gen_ai.agent.id", "tk-agent", "tok-1", 64, 32),
                        tokens_call("gen_ai.agent.id", "tk-agent", "not-in-table", 1000, 1000),
                        tokens_call(None, None, "tok-1", 128, 0),
                    ]
                }
            ],
        }
    )
    assert len(done) == 4
    wait_for(stack, dtd("tk-agent"), 64 * TOK1_IN + 32 * TOK1_OUT)  # 0.5 + 0.5
    wait_for(
        stack,
        'synthorg_cost_total{job="agent-sdk-2",gen_ai_agent_id="_unassigned"}',
        128 * TOK1_IN,  # no agent attribute at all: _unassigned
    )
    # The model without a price: one unpriced call and its tokens, never a cost (not even 0).
    wait_for(
        stack,
        'synthorg_calls_total{job="agent-sdk-2",gen_ai_request_model="not-in-table",'
        'synthorg_call_outcome="unpriced"}',
        1,
    )
    wait_for(stack, 'synthorg_tokens_total{gen_ai_request_model="not-in-table"}', 2000)
    assert stack.values('synthorg_cost_total{gen_ai_request_model="not-in-table"}') == {}


def litellm_calls(agent_metadata: list[dict | None], model: str = "gpt-4o-mini") -> list[dict]:
    return [{"model": model, "metadata": md} for md in agent_metadata]


def test_litellm_otel_metrics_per_agent_equal_the_ledger(stack: GenAIStack) -> None:
    calls = litellm_calls(
        [
            {"user_api_key_user_id": "ll-cto"},
            {"user_api_key_user_id": "ll-cto"},
            {"user_api_key_user_id": "ll-cto"},
            {"spend_logs_metadata": {"agent_id": "ll-eng"}},
            {"spend_logs_metadata": {"agent_id": "ll-eng"}},
            None,
        ]
    ) + litellm_calls([{"user_api_key_user_id": "ll-cto"}], model="openai/ll-private-model")
    done = stack.run_source(
        {"source": "litellm", "calls": calls}, env={"OTEL_SERVICE_NAME": "litellm-a"}
    )
    costs = [c["cost"] for c in done]
    assert costs[:6] == [LITELLM_CALL_COST] * 6 and not costs[6]  # LiteLLM's own figures
    wait_for(stack, dtd("ll-cto"), 3 * LITELLM_CALL_COST)
    wait_for(stack, ptd("ll-cto"), 3 * LITELLM_CALL_COST)
    wait_for(stack, dtd("ll-eng"), 2 * LITELLM_CALL_COST)
    wait_for(stack, ptd("ll-eng"), 2 * LITELLM_CALL_COST)
    wait_for(
        stack,
        'synthorg_cost_total{job="litellm-a",gen_ai_agent_id="_unassigned"}',
        LITELLM_CALL_COST,
    )
    # The unpriced call: counted as unpriced from LiteLLM's call count, no cost series.
    wait_for(
        stack,
        'synthorg_calls_total{job="litellm-a",synthorg_call_outcome="unpriced",'
        'gen_ai_agent_id="ll-cto",gen_ai_request_model="ll-private-model"}',
        1,
    )
    assert stack.values('synthorg_cost_total{gen_ai_request_model="ll-private-model"}') == {}
    # LiteLLM writes one series per call (hidden_params); we keep one per agent and model.
    series = stack.values('synthorg_cost_total{job="litellm-a"}')
    assert len(series) == 3, series
    assert stack.values('{__name__=~"gen_ai_.*"}') == {}, "raw GenAI metrics reached Prometheus"
    labels = next(iter(stack.prometheus.query('synthorg_cost_total{job="litellm-a"}')))["metric"]
    assert "hidden_params" not in labels and labels["gen_ai_provider_name"] == "openai"


def test_two_litellm_processes_side_by_side_keep_their_own_series(stack: GenAIStack) -> None:
    spec = {
        "source": "litellm",
        "calls": litellm_calls([{"user_api_key_user_id": "ll-twin"}] * 2),
    }
    with ThreadPoolExecutor(2) as pool:
        runs = [
            pool.submit(stack.run_source, spec, {"OTEL_SERVICE_NAME": "litellm-b"})
            for _ in range(2)
        ]
        for run in runs:
            run.result()
    wait_for(stack, dtd("ll-twin"), 4 * LITELLM_CALL_COST)
    instances = stack.values('synthorg_cost_total{gen_ai_agent_id="ll-twin"}')
    assert len(instances) == 2, instances  # one cumulative series per process
    assert all(close(v, 2 * LITELLM_CALL_COST) for v in instances.values()), instances


def test_an_app_recording_through_budgetwatch_and_litellm_is_counted_once(
    stack: GenAIStack,
) -> None:
    """BUDGETWATCH_GENAI_SKIP_JOBS names the app: its LiteLLM metrics are ignored."""
    done = stack.run_source(
        {
            "source": "litellm",
            "also_budgetwatch": True,
            "calls": litellm_calls(
                [{"agent_id": "both-cto", "user_api_key_user_id": "both-cto"}] * 2
            ),
        },
        env={"OTEL_SERVICE_NAME": SKIPPED_JOB},
    )
    assert [c["cost"] for c in done] == [LITELLM_CALL_COST] * 2
    wait_for(stack, dtd("both-cto"), 2 * LITELLM_CALL_COST)
    time.sleep(3)  # nothing more may arrive
    wait_for(stack, dtd("both-cto"), 2 * LITELLM_CALL_COST, timeout=1)
    scopes = {
        item["metric"].get("otel_scope_name")
        for item in stack.prometheus.query('synthorg_cost_total{gen_ai_agent_id="both-cto"}')
    }
    assert scopes == {"budgetwatch"}, scopes  # our library's series only


def test_openlit_per_agent_and_unpriced(stack: GenAIStack, tmp_path: Path) -> None:
    # OpenLIT prices per 1,000 tokens; the fake server answers 10 input and 5 output tokens.
    pricing = tmp_path / "openlit-prices.json"
    pricing.write_text(
        json.dumps({"chat": {"gpt-4o-mini": {"promptPrice": 0.5, "completionPrice": 1.0}}})
    )
    per_call = 10 / 1000 * 0.5 + 5 / 1000 * 1.0  # 0.01
    stack.run_source(
        {
            "source": "openlit",
            "service": "openlit-app",
            "pricing_json": str(pricing),
            "calls": [
                {"model": "gpt-4o-mini", "agent": "ol-cto"},
                {"model": "gpt-4o-mini", "agent": "ol-cto"},
                {"model": "gpt-4o-mini"},
                {"model": "ol-unknown-model", "agent": "ol-cto"},
            ],
        },
        env={"OTEL_RESOURCE_ATTRIBUTES": f"service.instance.id={uuid.uuid4()}"},
    )
    wait_for(stack, dtd("ol-cto"), 2 * per_call)
    wait_for(stack, ptd("ol-cto"), 2 * per_call)
    wait_for(
        stack, 'synthorg_cost_total{job="openlit-app",gen_ai_agent_id="_unassigned"}', per_call
    )
    wait_for(
        stack,
        'synthorg_calls_total{job="openlit-app",synthorg_call_outcome="unpriced",'
        'gen_ai_request_model="ol-unknown-model"}',
        1,
    )
    assert stack.values('synthorg_cost_total{gen_ai_request_model="ol-unknown-model"}') == {}


def test_spans_with_the_proposed_cost_attributes(stack: GenAIStack) -> None:
    priced = {
        "gen_ai.operation.name": "chat",
        "gen_ai.agent.id": "sp-cto",
        "gen_ai.provider.name": "acme",
        "gen_ai.request.model": "span-1",
        "gen_ai.usage.cost.amount": 0.25,
        "gen_ai.usage.cost.currency": "USD",
    }
    unpriced = {k: v for k, v in priced.items() if not k.startswith("gen_ai.usage.cost")}
    stack.run_source(
        {
            "source": "spans",
            "service": "span-app",
            "instance": str(uuid.uuid4()),
            "calls": [priced, priced, priced, unpriced],
        }
    )
    wait_for(stack, dtd("sp-cto"), 0.75)
    wait_for(
        stack,
        'synthorg_calls_total{gen_ai_agent_id="sp-cto",synthorg_call_outcome="unpriced"}',
        1,
    )
    wait_for(
        stack, 'synthorg_calls_total{gen_ai_agent_id="sp-cto",synthorg_call_outcome="priced"}', 3
    )


def test_5000_distinct_agents_from_one_source_stay_under_the_cap(stack: GenAIStack) -> None:
    from tests.support.genai_flood import push_token_flood

    agents = 5000
    push_token_flood(stack.collector.otlp_http, "flood", agents, model="tok-1")
    per_agent = TOK1_IN + TOK1_OUT  # one input and one output token each
    wait_for(stack, 'sum(synthorg_cost_total{job="flood"})', agents * per_agent, timeout=90)
    series = stack.values('synthorg_cost_total{job="flood"}')
    assert len(series) == 2001, len(series)  # 2,000 agents kept + _overflow
    overflow = stack.values('synthorg_cost_total{job="flood",gen_ai_agent_id="_overflow"}')
    assert close(sum(overflow.values()), 3000 * per_agent), overflow
    tokens = stack.values('count(synthorg_tokens_total{job="flood"})')
    calls = stack.values('count(synthorg_calls_total{job="flood"})')
    print(f"cardinality for {agents} agents: cost {len(series)}, tokens {tokens}, calls {calls}")
    assert list(tokens.values()) == [2 * 2001] and list(calls.values()) == [2001]


def test_the_agent_attribute_and_the_cap_are_configuration(tmp_path: Path) -> None:
    """BUDGETWATCH_AGENT_ATTRIBUTE, a JSON attribute and field, and BUDGETWATCH_MAX_AGENTS."""
    prices = tmp_path / "prices.yaml"
    prices.write_text(
        "apiVersion: budgetwatch/v1\nkind: PriceTable\nprices:\n"
        f"  - {{provider: acme, model: tok-1, input: {TOK1_IN}, output: {TOK1_OUT}, "
        "effective_from: 2026-01-01T00:00:00Z}\n"
    )
    env = {
        "BUDGETWATCH_AGENT_ATTRIBUTE": "app.agent",
        "BUDGETWATCH_AGENT_JSON_ATTRIBUTE": "app.meta",
        "BUDGETWATCH_AGENT_JSON_FIELD": "who",
        "BUDGETWATCH_MAX_AGENTS": "3",
    }

    def call(attributes: dict[str, str]) -> dict:
        base = {"gen_ai.provider.name": "acme", "gen_ai.request.model": "tok-1"}
        return {"attributes": {**base, **attributes}, "input": 64, "output": 0}

    with genai_stack(tmp_path / "stack", LIMITS, prices, env=env) as s:
        s.run_source(
            {
                "source": "tokens",
                "service": "configured",
                "instance": str(uuid.uuid4()),
                "steps": [
                    # the configured attribute wins over the conventions' id
                    {"calls": [call({"app.agent": "cfg-a", "gen_ai.agent.id": "not-me"})]},
                    {"calls": [call({"app.meta": json.dumps({"who": "cfg-b", "x": 1})})]},
                    {"calls": [call({"gen_ai.agent.name": "_reserved"})]},  # app_reserved
                    {"calls": [call({"gen_ai.agent.id": "fourth"})]},  # past the cap of 3
                    {"calls": [call({"app.agent": "   "})]},  # blank: _unassigned
                ],
            }
        )
        per_call = 64 * TOK1_IN  # 0.5
        expected = {"cfg-a": per_call, "cfg-b": per_call, "app_reserved": per_call}
        expected |= {"_overflow": per_call, "_unassigned": per_call}
        for agent, value in expected.items():
            wait_for(s, f'synthorg_cost_total{{job="configured",gen_ai_agent_id="{agent}"}}', value)
        agents = {
            item["metric"]["gen_ai_agent_id"]
            for item in s.prometheus.query('synthorg_cost_total{job="configured"}')
        }
        assert agents == set(expected), agents


def test_a_delta_temporality_source_is_accumulated(stack: GenAIStack) -> None:
    """The OTel SDK told to export deltas: the collector accumulates them per process."""
    step = {"calls": [tokens_call("gen_ai.agent.id", "tk-delta", "tok-1", 64, 16)]}
    stack.run_source(
        {
            "source": "tokens",
            "service": "agent-sdk-delta",
            "instance": str(uuid.uuid4()),
            "steps": [step, step, step],
        },
        env={"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "delta"},
    )
    per_step = 64 * TOK1_IN + 16 * TOK1_OUT  # 0.5 + 0.25
    wait_for(stack, dtd("tk-delta"), 3 * per_step)
    wait_for(stack, 'synthorg_tokens_total{gen_ai_agent_id="tk-delta"}', 3 * 80)
    wait_for(
        stack, 'synthorg_calls_total{gen_ai_agent_id="tk-delta",synthorg_call_outcome="priced"}', 3
    )


def test_openlit_without_usage_details_is_unpriced_not_zero(
    stack: GenAIStack, tmp_path: Path
) -> None:
    """A server without usage.prompt_tokens_details: OpenLIT records cost 0 (AttributeError)."""
    pricing = tmp_path / "openlit-prices.json"
    pricing.write_text(
        json.dumps({"chat": {"gpt-4o-mini": {"promptPrice": 0.5, "completionPrice": 1.0}}})
    )
    stack.run_source(
        {
            "source": "openlit",
            "service": "openlit-bare",
            "pricing_json": str(pricing),
            "usage_details": False,
            "calls": [{"model": "gpt-4o-mini", "agent": "ol-bare"}] * 2,
        },
        env={"OTEL_RESOURCE_ATTRIBUTES": f"service.instance.id={uuid.uuid4()}"},
    )
    wait_for(
        stack,
        'synthorg_calls_total{job="openlit-bare",synthorg_call_outcome="unpriced"}',
        2,
    )
    assert stack.values('synthorg_cost_total{job="openlit-bare"}') == {}
