"""Bad input never breaks the app: each case did not raise, and the drop was counted.

These use the real SDK with an in-memory reader (the application-owned provider path), so a
collection is instant; the wire itself is covered by test_telemetry_otlp.py.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from tests.support.otlp_receiver import OtlpReceiver, sdk_values

from budgetwatch import BudgetTelemetry
from budgetwatch._store import REASONS

AGENT = "gen_ai.agent.id"
Values = dict[tuple[str, frozenset[tuple[str, Any]]], float]


class Harness:
    def __init__(self, **kwargs: Any) -> None:
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(metric_readers=[self.reader])
        self.telemetry = BudgetTelemetry("svc", meter_provider=self.provider, **kwargs)

    def values(self) -> Values:
        sdk_values(self.reader)  # the collection where new series are announced as 0
        return sdk_values(self.reader)

    def dropped(self, values: Values) -> dict[str, float]:
        return {
            dict(attrs)["reason"]: v
            for (name, attrs), v in values.items()
            if name == "synthorg.telemetry.dropped"
        }

    def metric(self, values: Values, name: str, **attrs: str) -> float | None:
        """Sum of `name` over series whose attributes include `attrs` (None: no series)."""
        found = [
            v
            for (n, a), v in values.items()
            if n == name and all(dict(a).get(k) == want for k, want in attrs.items())
        ]
        return sum(found) if found else None


@pytest.fixture
def harness() -> Iterator[Harness]:
    h = Harness()
    yield h
    h.provider.shutdown()


Call = Callable[[BudgetTelemetry], None]
CASES: list[tuple[str, Call, str]] = [
    ("negative cost", lambda t: t.record_cost("a", -1.0), "negative_cost"),
    ("NaN cost", lambda t: t.record_cost("a", math.nan), "non_finite_cost"),
    ("infinite cost", lambda t: t.record_cost("a", math.inf), "non_finite_cost"),
    ("-inf cost", lambda t: t.record_cost("a", -math.inf), "non_finite_cost"),
    ("string cost", lambda t: t.record_cost("a", "0.1"), "invalid_cost_type"),  # type: ignore[arg-type]
    ("None cost", lambda t: t.record_cost("a", None), "invalid_cost_type"),  # type: ignore[arg-type]
    ("bool cost", lambda t: t.record_cost("a", True), "invalid_cost_type"),
    ("object cost", lambda t: t.record_cost("a", object()), "invalid_cost_type"),  # type: ignore[arg-type]
    ("negative tokens", lambda t: t.record_cost("a", 1.0, input_tokens=-5), "invalid_tokens"),
    ("float tokens", lambda t: t.record_cost("a", 1.0, output_tokens=1.5), "invalid_tokens"),  # type: ignore[arg-type]
    ("string tokens", lambda t: t.record_cost("a", 1.0, input_tokens="9"), "invalid_tokens"),  # type: ignore[arg-type]
    ("call tokens", lambda t: t.record_call("a", outcome="failed", input_tokens=-9), "invalid_tokens"),  # noqa: E501
    ("empty status", lambda t: t.record_task("a", ""), "invalid_status"),
    ("blank status", lambda t: t.record_task("a", " \t"), "invalid_status"),
    ("None status", lambda t: t.record_task("a", None), "invalid_status"),  # type: ignore[arg-type]
    ("int status", lambda t: t.record_task("a", 3), "invalid_status"),  # type: ignore[arg-type]
    ("unknown outcome", lambda t: t.record_call("a", outcome="bogus"), "invalid_outcome"),
    ("priced, no cost", lambda t: t.record_call("a", outcome="priced"), "invalid_outcome"),
    ("unhashable agent", lambda t: t.record_cost(["a"], 1.0), "invalid_agent_id"),  # type: ignore[arg-type]
    ("int agent", lambda t: t.record_cost(42, 1.0), "invalid_agent_id"),  # type: ignore[arg-type]
    ("unhashable task agent", lambda t: t.record_task({"a"}, "created"), "invalid_agent_id"),  # type: ignore[arg-type]
    ("dict provider", lambda t: t.record_cost("a", 1.0, provider={"x": 1}), "invalid_attribute"),  # type: ignore[arg-type]
]  # fmt: skip


@pytest.mark.parametrize(("call", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_does_not_raise_and_the_drop_is_counted(
    harness: Harness, call: Call, reason: str
) -> None:
    call(harness.telemetry)  # must not raise
    call(harness.telemetry)
    values = harness.values()
    assert harness.dropped(values) == {reason: 2}


def test_every_reason_is_known_and_documented() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "instrumentation.md").read_text()
    assert {reason for _, _, reason in CASES} <= set(REASONS)
    for reason in REASONS:
        assert f"`{reason}`" in docs, f"{reason} is not in docs/instrumentation.md"


def test_bad_cost_keeps_the_call_and_its_tokens_as_unpriced(harness: Harness) -> None:
    harness.telemetry.record_cost("a", math.nan, provider="p", model="m", input_tokens=7)
    values = harness.values()
    assert harness.metric(values, "synthorg.cost", **{AGENT: "a"}) == 0
    assert harness.metric(values, "synthorg.tokens", **{"gen_ai.token.type": "input"}) == 7
    assert harness.metric(values, "synthorg.calls", **{"synthorg.call.outcome": "unpriced"}) == 1
    assert harness.metric(values, "synthorg.calls", **{"synthorg.call.outcome": "priced"}) is None


def test_bad_tokens_keep_the_cost(harness: Harness) -> None:
    harness.telemetry.record_cost("a", 1.5, input_tokens=-1, output_tokens=4)
    values = harness.values()
    assert harness.metric(values, "synthorg.cost", **{AGENT: "a"}) == 1.5
    assert harness.metric(values, "synthorg.tokens", **{"gen_ai.token.type": "input"}) == 0
    assert harness.metric(values, "synthorg.tokens", **{"gen_ai.token.type": "output"}) == 4


def test_bad_agent_type_is_kept_under_unassigned(harness: Harness) -> None:
    harness.telemetry.record_cost(42, 2.0)  # type: ignore[arg-type]
    values = harness.values()
    assert harness.metric(values, "synthorg.cost", **{AGENT: "_unassigned"}) == 2.0


def test_other_numeric_costs_are_accepted(harness: Harness) -> None:
    harness.telemetry.record_cost("a", 2)  # int
    harness.telemetry.record_cost("a", Decimal("0.5"))  # type: ignore[arg-type]
    harness.telemetry.record_cost("a", Fraction(1, 4))  # type: ignore[arg-type]
    harness.telemetry.record_cost("a", 0.0)  # free calls exist (cached prompts, local models)
    values = harness.values()
    assert harness.metric(values, "synthorg.cost", **{AGENT: "a"}) == 2.75
    assert harness.metric(values, "synthorg.calls", **{AGENT: "a"}) == 4
    assert harness.dropped(values) == {}


def test_each_reason_is_logged_once(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="budgetwatch"):
        for _ in range(5):
            harness.telemetry.record_cost("a", math.nan)
            harness.telemetry.record_task("a", "")
    messages = [r.getMessage() for r in caplog.records if r.name == "budgetwatch"]
    assert len(messages) == 2
    assert any("non_finite_cost" in m for m in messages)
    assert any("invalid_status" in m for m in messages)
    assert harness.dropped(harness.values()) == {"non_finite_cost": 5, "invalid_status": 5}


def test_blank_and_none_agents_are_unassigned(harness: Harness) -> None:
    for agent in (None, "", "   ", "\n\t"):
        harness.telemetry.record_task(agent, "created")
    values = harness.values()
    key = frozenset({AGENT: "_unassigned", "synthorg.task.status": "created"}.items())
    assert values == {("synthorg.tasks", key): 4}


def test_attribute_values_are_cleaned_and_trimmed(harness: Harness) -> None:
    harness.telemetry.record_cost("c\x00t\x1bo\n", 1.0, provider=" anthropic ", model="m" * 500)
    values = harness.values()
    (key,) = [attrs for name, attrs in values if name == "synthorg.cost"]
    attrs = dict(key)
    assert attrs[AGENT] == "cto"
    assert attrs["gen_ai.provider.name"] == "anthropic"
    assert attrs["gen_ai.request.model"] == "m" * 128


def test_reserved_ids_stay_reserved(harness: Harness) -> None:
    harness.telemetry.record_cost("_overflow", 1.0)
    harness.telemetry.record_cost("_unassigned", 2.0)
    values = harness.values()
    agents = {dict(a)[AGENT]: v for (n, a), v in values.items() if n == "synthorg.cost"}
    assert agents == {"app_overflow": 1.0, "app_unassigned": 2.0}


def test_agents_beyond_max_agents_go_to_overflow_and_are_counted() -> None:
    h = Harness(max_agents=3)
    t = h.telemetry
    for agent in ("a", "b", "c"):
        t.record_cost(agent, 1.0)
    t.record_cost(None, 1.0)  # reserved ids do not use up the cap
    for i in range(100):
        t.record_cost(f"new-{i}", 0.5)  # 100 events past the cap
    t.record_task("late", "completed")  # tasks share the agent cap
    t.record_cost("a", 1.0)  # known agents keep working
    values = h.values()
    cost = {dict(a)[AGENT]: v for (n, a), v in values.items() if n == "synthorg.cost"}
    assert cost == {"a": 2.0, "b": 1.0, "c": 1.0, "_unassigned": 1.0, "_overflow": 50.0}
    assert h.metric(values, "synthorg.tasks", **{AGENT: "_overflow"}) == 1
    assert h.dropped(values) == {"agent_overflow": 101}
    h.provider.shutdown()


def test_series_count_is_bounded_by_max_agents() -> None:
    h = Harness(max_agents=10)
    for i in range(5000):
        h.telemetry.record_cost(f"agent-{i}", 0.01, provider="p", model="m")
    values = h.values()
    assert len([k for k in values if k[0] == "synthorg.cost"]) == 11  # 10 agents + _overflow
    h.provider.shutdown()


def test_max_series_and_provider_caps_fold_and_count() -> None:
    h = Harness(max_series=2)
    t = h.telemetry
    t.record_cost("a", 1.0, provider="p", model="m1")
    t.record_cost("a", 1.0, provider="p", model="m2")
    t.record_cost("a", 1.0, provider="p", model="m3")  # a third (agent, provider, model)
    values = h.values()
    assert h.metric(values, "synthorg.cost", **{AGENT: "_overflow"}) == 1.0
    assert h.dropped(values) == {"series_overflow": 1}
    h.provider.shutdown()

    h = Harness()
    for i in range(70):
        h.telemetry.record_cost("a", 1.0, provider=f"provider-{i}", model="m")
    values = h.values()
    assert h.metric(values, "synthorg.cost", **{"gen_ai.provider.name": "_overflow"}) == 6.0
    assert h.dropped(values) == {"provider_overflow": 6}
    h.provider.shutdown()


def test_a_down_slow_or_failing_collector_never_slows_recording() -> None:
    with OtlpReceiver() as receiver:
        receiver.status = 500
        receiver.delay_s = 1.0
        telemetry = BudgetTelemetry(
            "svc", endpoint=receiver.base_url, export_interval_s=0.05, timeout_s=1
        )
        start = time.perf_counter()
        worst, calls = 0.0, 0
        # Record until exports have failed (slowly) several times meanwhile.
        while receiver.refused < 2 and time.perf_counter() - start < 20:
            t0 = time.perf_counter()
            telemetry.record_cost(f"agent-{calls % 20}", 0.01)
            telemetry.record_task(f"agent-{calls % 20}", "completed")
            worst = max(worst, time.perf_counter() - t0)
            calls += 1
        assert receiver.refused >= 2
        assert telemetry.force_flush(0.5) is False
        receiver.status = 200
        receiver.delay_s = 0
        assert telemetry.force_flush(5) is True
        telemetry.shutdown()
        assert receiver.value(
            "synthorg.tasks", {AGENT: "agent-0", "synthorg.task.status": "completed"}
        )
    # Recording never waited on the network: each failed export took >= 1 s; the margin
    # below that is for a loaded CI machine.
    assert worst < 0.5, f"slowest record call took {worst:.3f}s"
