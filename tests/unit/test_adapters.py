"""Adapters for SynthOrg-style cost records and task status changes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from tests.support.otlp_receiver import sdk_values

from budgetwatch import BudgetTelemetry
from budgetwatch.adapters import record_cost_record, record_task, record_task_change

AGENT, PROVIDER, MODEL = "gen_ai.agent.id", "gen_ai.provider.name", "gen_ai.request.model"


@pytest.fixture
def setup() -> Iterator[tuple[BudgetTelemetry, InMemoryMetricReader]]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    yield BudgetTelemetry("svc", meter_provider=provider), reader
    provider.shutdown()


def values(reader: InMemoryMetricReader, metric: str) -> dict[frozenset[tuple[str, Any]], float]:
    sdk_values(reader)  # new series are announced as 0 first
    return {attrs: v for (name, attrs), v in sdk_values(reader).items() if name == metric}


def key(**attrs: str) -> frozenset[tuple[str, str]]:
    return frozenset(attrs.items())


@dataclass(frozen=True)
class CostRecord:  # the shape of SynthOrg's CostRecord (a frozen model)
    agent_id: str
    task_id: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cost: float


@dataclass(frozen=True)
class LegacyCostRecord:  # before the rename, cost was cost_usd
    agent_id: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: float


def test_cost_record_object_mapping_and_legacy_field(
    setup: tuple[BudgetTelemetry, InMemoryMetricReader],
) -> None:
    telemetry, reader = setup
    record_cost_record(telemetry, CostRecord("cto", "t1", "anthropic", "sonnet", 100, 20, 0.25))
    record_cost_record(
        telemetry,
        {"agent_id": "cto", "provider": "anthropic", "model": "sonnet", "input_tokens": 50,
         "output_tokens": 5, "cost": 0.5},
    )  # fmt: skip
    record_cost_record(telemetry, LegacyCostRecord("cfo", "openai", "gpt-4o", 10, 1, 0.125))
    cto = {AGENT: "cto", PROVIDER: "anthropic", MODEL: "sonnet"}
    cfo = {AGENT: "cfo", PROVIDER: "openai", MODEL: "gpt-4o"}
    assert values(reader, "synthorg.cost") == {key(**cto): 0.75, key(**cfo): 0.125}
    tokens = {
        (dict(k)[AGENT], dict(k)["gen_ai.token.type"]): v
        for k, v in values(reader, "synthorg.tokens").items()
    }
    assert tokens == {("cto", "input"): 150, ("cto", "output"): 25, ("cfo", "input"): 10,
                      ("cfo", "output"): 1}  # fmt: skip


def test_record_without_cost_is_an_unpriced_call_and_counted(
    setup: tuple[BudgetTelemetry, InMemoryMetricReader],
) -> None:
    telemetry, reader = setup
    record_cost_record(telemetry, {"agent_id": "cto", "input_tokens": 7})  # no cost at all
    record_cost_record(telemetry, object())  # nothing readable: must not raise either
    data = sdk_values(reader)
    data = sdk_values(reader)
    calls = {
        (dict(a)[AGENT], dict(a)["synthorg.call.outcome"]): v
        for (n, a), v in data.items()
        if n == "synthorg.calls"
    }
    assert calls == {("cto", "unpriced"): 1, ("_unassigned", "unpriced"): 1}
    assert data[("synthorg.telemetry.dropped", key(reason="invalid_cost_type"))] == 2


class TaskStatus(StrEnum):
    CREATED = "created"
    IN_PROGRESS = "in_progress"


class PlainStatus(Enum):
    COMPLETED = "completed"


@dataclass
class Task:
    assigned_to: str | None
    status: TaskStatus


def test_task_changes_with_enums_and_unassigned_tasks(
    setup: tuple[BudgetTelemetry, InMemoryMetricReader],
) -> None:
    telemetry, reader = setup
    record_task(telemetry, Task(assigned_to="", status=TaskStatus.CREATED))
    record_task_change(telemetry, "cto", TaskStatus.IN_PROGRESS)
    record_task_change(telemetry, "cto", PlainStatus.COMPLETED)
    record_task(telemetry, {"assigned_to": "cto", "status": "completed"})
    status = "synthorg.task.status"
    assert values(reader, "synthorg.tasks") == {
        key(**{AGENT: "_unassigned", status: "created"}): 1,
        key(**{AGENT: "cto", status: "in_progress"}): 1,
        key(**{AGENT: "cto", status: "completed"}): 2,
    }
