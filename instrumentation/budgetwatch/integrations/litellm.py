"""LiteLLM callback that records every call's cost, tokens and agent through BudgetTelemetry.

    import litellm
    from budgetwatch.integrations.litellm import BudgetwatchLogger

    litellm.callbacks = [BudgetwatchLogger(telemetry)]

The spend recorded is the spend LiteLLM computed from its own price map (`response_cost`),
not a price table of ours. Per call:

- priced success: one cost record through `budgetwatch.adapters.record_cost_record`, the same
  path as SynthOrg's cost records (cost, input/output tokens, provider, model, one "priced" call);
- success LiteLLM could not price: `record_call(outcome="unpriced")` with its tokens, never a
  zero cost, so unmeasured spend stays visible;
- failure: `record_call(outcome="failed")` with whatever tokens are known, no cost.

The agent is the call's `metadata[metadata_key]` (default `agent_id`), else the agent set with
`budgetwatch.agent(...)` around the call, else none (`_unassigned`). A priced call whose
metadata carries `task_key` (default `task_id`) adds its cost to that task (see
`BudgetTelemetry.record_task`). Streaming calls are
recorded once, when LiteLLM reports the complete stream. Nothing here raises into LiteLLM.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

try:
    from litellm.integrations.custom_logger import CustomLogger
except ImportError as err:  # the extra is optional; say how to get it
    raise ImportError(
        "budgetwatch.integrations.litellm needs LiteLLM: pip install 'budgetwatch[litellm]'"
    ) from err

from budgetwatch.adapters import record_cost_record
from budgetwatch.context import current_agent

if TYPE_CHECKING:
    from budgetwatch.telemetry import BudgetTelemetry

__all__ = ["BudgetwatchLogger", "LiteLLMCall", "read_call"]

_log = logging.getLogger(__name__)

# Call ids remembered (to record each call once even if LiteLLM reports it twice, and the
# agent each call started under); enough for any burst of calls in flight.
_SEEN_CALLS_MAX = 8192


@dataclass(frozen=True)
class LiteLLMCall:
    """What budgetwatch takes from one LiteLLM callback."""

    agent_id: str | None
    provider: str | None
    model: str | None
    input_tokens: int
    output_tokens: int
    cost: float | None  # None: LiteLLM could not price the call
    call_id: str | None
    task_id: str | None = None


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _count(value: object) -> int:
    # bool is an int: never count True as one token
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return 0


def _from_metadata(kwargs: Mapping[str, Any], key: str) -> str | None:
    params = _mapping(kwargs.get("litellm_params"))
    slo_metadata = _mapping(_mapping(kwargs.get("standard_logging_object")).get("metadata"))
    # `metadata=` of completion(); `litellm_metadata` for the APIs that use it; the proxy
    # keeps the client's own metadata under `requester_metadata`.
    for metadata in (
        _mapping(params.get("metadata")),
        _mapping(params.get("litellm_metadata")),
        _mapping(kwargs.get("metadata")),
        _mapping(_mapping(params.get("metadata")).get("requester_metadata")),
        _mapping(slo_metadata.get("requester_metadata")),
    ):
        value = _text(metadata.get(key))
        if value is not None:
            return value
    return None


def _tokens(
    slo: Mapping[str, Any], response_obj: object, field: Literal["prompt", "completion"]
) -> int:
    from_slo = _count(slo.get(f"{field}_tokens"))
    if from_slo:
        return from_slo
    usage = getattr(response_obj, "usage", None)
    if usage is None and isinstance(response_obj, Mapping):
        usage = response_obj.get("usage")
    if isinstance(usage, Mapping):
        return _count(usage.get(f"{field}_tokens"))
    return _count(getattr(usage, f"{field}_tokens", None))


def _cost(kwargs: Mapping[str, Any], slo: Mapping[str, Any]) -> float | None:
    if "response_cost" in kwargs:
        value = kwargs["response_cost"]  # None when LiteLLM could not price the call
    elif slo.get("response_cost_failure_debug_info"):
        value = None  # the payload says 0.0 but the price was unknown
    else:
        value = slo.get("response_cost")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    cost = float(value)
    return cost if math.isfinite(cost) else None


def read_call(
    kwargs: Mapping[str, Any],
    response_obj: object,
    *,
    metadata_key: str = "agent_id",
    started_by: str | None = None,
    task_key: str = "task_id",
) -> LiteLLMCall:
    """The agent, provider, model, tokens and cost of one LiteLLM callback's arguments.

    The agent: the call's metadata, else `started_by` (the agent current when the call
    started), else the agent current now, else None.
    """
    slo = _mapping(kwargs.get("standard_logging_object"))
    params = _mapping(kwargs.get("litellm_params"))
    agent_id = _from_metadata(kwargs, metadata_key) or started_by or current_agent()
    return LiteLLMCall(
        agent_id=agent_id,
        provider=_text(kwargs.get("custom_llm_provider"))
        or _text(slo.get("custom_llm_provider"))
        or _text(params.get("custom_llm_provider")),
        model=_text(slo.get("model")) or _text(kwargs.get("model")),
        input_tokens=_tokens(slo, response_obj, "prompt"),
        output_tokens=_tokens(slo, response_obj, "completion"),
        cost=_cost(kwargs, slo),
        call_id=_text(kwargs.get("litellm_call_id")) or _text(slo.get("id")),
        task_id=_from_metadata(kwargs, task_key),
    )


class BudgetwatchLogger(CustomLogger):
    """LiteLLM callback recording each call through a `BudgetTelemetry`.

    `metadata_key` is the key of the call's `metadata` that holds the agent id, `task_key`
    the one that holds the task id.
    """

    def __init__(
        self, telemetry: BudgetTelemetry, metadata_key: str = "agent_id", task_key: str = "task_id"
    ) -> None:
        for name, value in (("metadata_key", metadata_key), ("task_key", task_key)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty string, got {value!r}")
        super().__init__()
        self.telemetry = telemetry
        self.metadata_key = metadata_key
        self.task_key = task_key
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._started_by: OrderedDict[str, str] = OrderedDict()  # call id -> agent at start
        self._lock = threading.Lock()
        self._logged: set[str] = set()

    # LiteLLM passes these by keyword: the parameter names must stay as they are.
    def log_pre_api_call(self, model: Any, messages: Any, kwargs: dict[str, Any]) -> None:
        # Runs in the caller's context. The success hook of a sync stream does not (LiteLLM
        # runs it on a thread without the caller's context), so remember the agent here.
        self._safely(self._on_start, kwargs, None)

    async def async_log_pre_api_call(
        self, model: Any, messages: Any, kwargs: dict[str, Any]
    ) -> None:
        self._safely(self._on_start, kwargs, None)

    def log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self._safely(self._on_success, kwargs, response_obj)

    async def async_log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self._safely(self._on_success, kwargs, response_obj)

    def log_failure_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self._safely(self._on_failure, kwargs, response_obj)

    async def async_log_failure_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self._safely(self._on_failure, kwargs, response_obj)

    def _on_start(self, kwargs: Mapping[str, Any], response_obj: object) -> None:
        agent_id = current_agent()
        call_id = _text(kwargs.get("litellm_call_id"))
        if agent_id is None or call_id is None:
            return
        with self._lock:
            self._started_by[call_id] = agent_id
            if len(self._started_by) > _SEEN_CALLS_MAX:  # calls that never ended
                self._started_by.popitem(last=False)

    def _agent_at_start(self, kwargs: Mapping[str, Any], *, done: bool) -> str | None:
        call_id = _text(kwargs.get("litellm_call_id"))
        if call_id is None:
            return None
        with self._lock:
            if done:
                return self._started_by.pop(call_id, None)
            return self._started_by.get(call_id)  # a failed attempt may be retried

    def _on_success(self, kwargs: Mapping[str, Any], response_obj: object) -> None:
        # Streams: LiteLLM calls this hook once, with the complete response (the chunks go
        # to log_stream_event, which budgetwatch does not use).
        call = read_call(
            kwargs,
            response_obj,
            metadata_key=self.metadata_key,
            started_by=self._agent_at_start(kwargs, done=True),
            task_key=self.task_key,
        )
        if not self._first_time("success", call.call_id):
            return
        if call.cost is None:
            self.telemetry.record_call(
                call.agent_id,
                outcome="unpriced",
                provider=call.provider,
                model=call.model,
                input_tokens=call.input_tokens,
                output_tokens=call.output_tokens,
            )
            return
        # The same path as SynthOrg's cost records, so both are recorded alike.
        record_cost_record(
            self.telemetry,
            {
                "agent_id": call.agent_id,
                "provider": call.provider,
                "model": call.model,
                "input_tokens": call.input_tokens,
                "output_tokens": call.output_tokens,
                "cost": call.cost,
                "task_id": call.task_id,
            },
        )

    def _on_failure(self, kwargs: Mapping[str, Any], response_obj: object) -> None:
        call = read_call(
            kwargs,
            response_obj,
            metadata_key=self.metadata_key,
            started_by=self._agent_at_start(kwargs, done=False),
        )
        if not self._first_time("failure", call.call_id):
            return
        self.telemetry.record_call(
            call.agent_id,
            outcome="failed",
            provider=call.provider,
            model=call.model,
            input_tokens=call.input_tokens,
            output_tokens=call.output_tokens,
        )

    def _first_time(self, kind: str, call_id: str | None) -> bool:
        if call_id is None:
            return True
        key = (kind, call_id)
        with self._lock:  # sync callbacks run on LiteLLM's thread pool
            if key in self._seen:
                return False
            self._seen[key] = None
            if len(self._seen) > _SEEN_CALLS_MAX:
                self._seen.popitem(last=False)
        return True

    def _safely(
        self,
        handler: Callable[[Mapping[str, Any], object], None],
        kwargs: object,
        response_obj: object,
    ) -> None:
        try:
            handler(_mapping(kwargs), response_obj)
        except Exception as err:  # a telemetry problem must never fail the app's LLM call
            reason = type(err).__name__
            if reason not in self._logged:
                self._logged.add(reason)
                _log.warning("budgetwatch: LiteLLM call not recorded (%s: %s)", reason, err)
