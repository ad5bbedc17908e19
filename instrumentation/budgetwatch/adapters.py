"""Record SynthOrg-style objects: cost records and task status changes.

    from budgetwatch import BudgetTelemetry
    from budgetwatch.adapters import record_cost_record, record_task_change

    telemetry = BudgetTelemetry(service_name="synthorg")
    record_cost_record(telemetry, cost_record)        # object or mapping
    record_task_change(telemetry, task.assigned_to, task.status, task.id)

Like the telemetry API, these never raise into the application: a record with missing or
bad fields is recorded as far as it can be, and what is dropped is counted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .telemetry import BudgetTelemetry

__all__ = ["record_cost_record", "record_task", "record_task_change"]

_MISSING = object()


def record_cost_record(telemetry: BudgetTelemetry, record: object) -> None:
    """Record one SynthOrg cost record (a CostRecord model, dataclass, or mapping).

    Reads `agent_id`, `provider`, `model`, `input_tokens`, `output_tokens`, `cost`
    (or `cost_usd`, its former name) and `task_id` (the cost adds to that task's total,
    recorded when the task finishes; see `record_task_change`). Missing tokens count as 0.
    A record without a usable cost is recorded as an unpriced call (tokens kept) and the
    dropped cost is counted.
    The record's own timestamp is not used: the event is counted when it is recorded.
    """
    cost = _field(record, "cost")
    if cost is None:
        cost = _field(record, "cost_usd")
    telemetry.record_cost(
        _field(record, "agent_id"),
        cost,  # validated (and counted when bad) by record_cost
        provider=_field(record, "provider"),
        model=_field(record, "model"),
        input_tokens=_tokens(_field(record, "input_tokens")),
        output_tokens=_tokens(_field(record, "output_tokens")),
        task_id=_field(record, "task_id"),
    )


def record_task_change(
    telemetry: BudgetTelemetry, agent_id: object, new_status: object, task_id: object = None
) -> None:
    """Record that a task entered `new_status` (a str or a str-valued Enum such as
    SynthOrg's TaskStatus). An empty `agent_id` (a task still `created`) is `_unassigned`.
    With the task's id, a terminal status records the task's cost (the sum of the cost
    records carrying that `task_id`) in `<ns>.task.cost`."""
    telemetry.record_task(agent_id, new_status, task_id=task_id)  # type: ignore[arg-type]


def record_task(telemetry: BudgetTelemetry, task: object) -> None:
    """Record a SynthOrg task's current status, read from its `assigned_to`, `status` and
    `id`."""
    record_task_change(
        telemetry, _field(task, "assigned_to"), _field(task, "status"), _field(task, "id")
    )


def _field(source: object, name: str) -> Any:
    """`source[name]` for a mapping, else `source.name`; None when absent or unreadable."""
    try:
        if isinstance(source, Mapping):
            value = source.get(name, _MISSING)
        else:
            value = getattr(source, name, _MISSING)
    except Exception:  # a property that raises must not reach the application
        return None
    return None if value is _MISSING else value


def _tokens(value: object) -> Any:
    # Absent tokens are "none reported", not a bad value.
    return 0 if value is None else value
