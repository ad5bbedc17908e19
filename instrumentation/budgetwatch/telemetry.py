"""BudgetTelemetry: record LLM cost, tokens, calls and task status changes as OTLP counters.

The public API of contract section 1. Recording never raises into the application and never
touches the network: it adds to in-process totals (see `_store`), which are read and pushed
over OTLP at each export interval (see `_pipeline`).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import os
import re
import threading
import time
import uuid
import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, cast

from ._labels import as_text, clean
from ._otlp import ExportSettings, resolve
from ._pipeline import SCOPE, OwnedPipeline, register_instruments
from ._store import (
    FAILED,
    INPUT_TOKENS,
    OUTPUT_TOKENS,
    PRICED,
    UNPRICED,
    Store,
    cost_problem,
    tokens_valid,
)
from ._tasks import TaskCosts, create_histogram

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider

__all__ = ["BudgetTelemetry"]

logger = logging.getLogger("budgetwatch")

_INF = math.inf
_NAMESPACE = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_CURRENCY = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,15}\Z")
# Outcomes record_call accepts: a priced call comes with its cost, through record_cost.
_CALL_OUTCOMES = {"unpriced": UNPRICED, "failed": FAILED}


class BudgetTelemetry:
    """Budget telemetry for one application process.

    `service_name` becomes the OTLP resource's `service.name` (Prometheus `job`); each process
    gets its own `service.instance.id` (Prometheus `instance`), renewed in a forked child.
    With `meter_provider` given, the instruments are registered on the application's
    provider instead, and the application owns the resource, the exporter and the export
    interval (the endpoint, headers, timeout and protocol arguments are then unused); it
    should add `budgetwatch.task_cost_view(namespace)` to that provider.
    `max_open_tasks` bounds the tasks whose cost is being summed (see `record_task`).
    """

    def __init__(
        self,
        service_name: str,
        *,
        namespace: str = "synthorg",
        currency: str = "USD",
        endpoint: str | None = None,
        export_interval_s: float = 10.0,
        meter_provider: MeterProvider | None = None,
        max_agents: int = 2000,
        headers: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
        protocol: str | None = None,
        max_series: int = 20_000,
        max_open_tasks: int = 10_000,
    ) -> None:
        if not isinstance(service_name, str) or not clean(service_name):
            raise ValueError(f"service_name must be a non-empty string, got {service_name!r}")
        if not isinstance(namespace, str) or not _NAMESPACE.match(namespace):
            raise ValueError(
                f"namespace must start with a letter and hold only letters, digits and '_', "
                f"got {namespace!r}"
            )
        if not isinstance(currency, str) or not _CURRENCY.match(currency):
            raise ValueError(f"currency must be a code such as 'USD', got {currency!r}")
        if not _positive(export_interval_s):
            raise ValueError(f"export_interval_s must be > 0, got {export_interval_s!r}")
        for name, value in (
            ("max_agents", max_agents),
            ("max_series", max_series),
            ("max_open_tasks", max_open_tasks),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")

        self.service_name = clean(service_name)
        self.namespace = namespace
        self.currency = currency
        self.export_interval_s = float(export_interval_s)
        self.max_agents = max_agents
        self.max_series = max_series
        self.max_open_tasks = max_open_tasks
        self._app_provider = meter_provider
        self._settings: ExportSettings | None = None
        if meter_provider is None:
            self._settings = resolve(
                endpoint=endpoint, headers=headers, timeout_s=timeout_s, protocol=protocol
            )
        elif endpoint or headers or timeout_s or protocol:
            logger.warning(
                "budgetwatch: meter_provider given, so endpoint/headers/timeout_s/protocol "
                "are unused (the application's provider exports)"
            )
        self._closed = False
        self._close_lock = threading.Lock()
        self._instance_id = str(uuid.uuid4())
        self._store = self._new_store()
        self._pipeline: OwnedPipeline | None = None
        ref = weakref.ref(self)
        if meter_provider is None:
            self._pipeline = self._new_pipeline()
            meter = self._pipeline.provider.get_meter(SCOPE, _version())
        else:
            meter = meter_provider.get_meter(SCOPE, _version())
            register_instruments(meter, ref, namespace=namespace, currency=currency, owner_pid=None)
        self._tasks = TaskCosts(
            max_open_tasks,
            create_histogram(meter, namespace=namespace, currency=currency),
            namespace,
        )
        _register_process_hooks(ref)

    # --- public API ---------------------------------------------------------------------------

    @property
    def instance_id(self) -> str:
        """The `service.instance.id` of this process (a new one after fork).

        With an application-owned meter_provider, the application's resource decides what
        goes over the wire; this id is then only budgetwatch's own process identity.
        """
        return self._instance_id

    @property
    def endpoint(self) -> str | None:
        """The resolved OTLP metrics endpoint (None with an application-owned provider)."""
        return None if self._settings is None else self._settings.endpoint

    @property
    def protocol(self) -> str | None:
        """`http/protobuf` or `grpc` (None with an application-owned provider)."""
        return None if self._settings is None else self._settings.protocol

    def record_cost(
        self,
        agent_id: str | None,
        cost: float,
        *,
        provider: str | None = None,
        model: str | None = None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        task_id: str | None = None,
    ) -> None:
        """Record one priced LLM call: its cost, its tokens, and one call with outcome priced.

        With `task_id`, the cost is also added to that task's total (the task is opened if
        new), recorded when `record_task` reports the task's terminal status.

        Never raises. A cost that is not a finite number >= 0 is dropped (and counted); the
        call and its tokens are then still recorded, as an unpriced call.
        """
        try:
            store = self._store
            # Hot path: exact types, a cached row, four additions under the lock.
            if (
                type(cost) is float
                and 0.0 <= cost < _INF
                and type(input_tokens) is int
                and input_tokens >= 0
                and type(output_tokens) is int
                and output_tokens >= 0
            ):
                try:
                    row = store.call_cache.get((agent_id, provider, model))
                except TypeError:  # an unhashable argument: the slow path reports it
                    row = None
                if row is not None:
                    with store.lock:
                        row[0] += cost
                        row[1] += input_tokens
                        row[2] += output_tokens
                        row[3] += 1
                    if task_id is not None:
                        self._add_to_task(task_id, cost)
                    return
            self._record_call_slow(
                store, agent_id, provider, model, input_tokens, output_tokens, cost, PRICED
            )
            if task_id is not None:
                value, problem = cost_problem(cost)
                self._add_to_task(task_id, 0.0 if problem else value)
        except Exception:
            self._internal_error()

    def record_call(
        self,
        agent_id: str | None,
        *,
        outcome: str,
        provider: str | None = None,
        model: str | None = None,
        input_tokens: int = 0,
        output_tokens: int = 0,
    ) -> None:
        """Record an LLM call without a known cost: outcome "unpriced" or "failed".

        Counts the call in `<ns>.calls` and its tokens if any; never records cost.
        """
        try:
            text = as_text(outcome)
            column = _CALL_OUTCOMES.get(clean(text).lower()) if text is not None else None
            store = self._store
            if column is None:
                self._count(store, ["invalid_outcome"])
                return
            self._record_call_slow(
                store, agent_id, provider, model, input_tokens, output_tokens, None, column
            )
        except Exception:
            self._internal_error()

    def record_task(self, agent_id: str | None, status: str, task_id: str | None = None) -> None:
        """Record that a task entered `status` (e.g. "completed") while owned by `agent_id`.

        Statuses are lower-cased; None or blank agent means `_unassigned`. Never raises.

        With `task_id`: a terminal status (`spec.TERMINAL_STATUSES`) closes the task and
        records its total cost in `<ns>.task.cost` under this agent and status (0 for a task
        that recorded no cost); any other status opens the task if it is not open.
        """
        try:
            store = self._store
            try:
                row = store.task_cache.get((agent_id, status))
            except TypeError:
                row = None
            if row is not None:
                with store.lock:
                    row[0] += 1
            else:
                self._record_task_slow(store, agent_id, status)
            if task_id is not None:
                self._task_status(store, agent_id, status, task_id)
        except Exception:
            self._internal_error()

    def force_flush(self, timeout_s: float = 10.0) -> bool:
        """Export everything recorded so far; True when the export succeeded.

        A series seen for the first time is exported as 0 and then, in a second export a few
        milliseconds later, with its total (contract section 2). After shutdown(): False.
        """
        if self._closed:
            return False
        return self._flush(timeout_s)

    def _flush(self, timeout_s: float) -> bool:
        try:
            if self._pipeline is None:
                assert self._app_provider is not None
                flush = getattr(self._app_provider, "force_flush", None)
                return bool(flush(timeout_millis=timeout_s * 1000.0)) if flush else True
            deadline = time.monotonic() + timeout_s
            ok, announced = self._flush_once(timeout_s)
            if ok and announced:
                time.sleep(0.005)  # distinct millisecond timestamps for the 0 and the total
                ok, _ = self._flush_once(max(deadline - time.monotonic(), 0.1))
            return ok
        except Exception:
            logger.warning("budgetwatch: flush failed", exc_info=True)
            return False

    def shutdown(self) -> None:
        """Flush what was recorded and stop exporting. Safe to call twice; also run at exit.

        With an application-owned meter_provider, flushes it but leaves it running.
        """
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        try:
            timeout = (self._settings.timeout_s if self._settings else None) or 10.0
            ok = self._flush(timeout)
            if self._pipeline is not None:
                # The reader's shutdown exports once more; after a failed flush (collector
                # down) give that last try only a moment, so exit is not held up for long.
                self._pipeline.shutdown(timeout_s=timeout if ok else 1.0)
        except Exception:
            logger.warning("budgetwatch: shutdown failed", exc_info=True)

    # --- slow paths ---------------------------------------------------------------------------

    def _record_call_slow(
        self,
        store: Store,
        agent_id: object,
        provider: object,
        model: object,
        input_tokens: object,
        output_tokens: object,
        cost: object,
        column: int,
    ) -> None:
        reasons: list[str] = []
        value = 0.0
        if column == PRICED:
            value, problem = cost_problem(cost)
            if problem is not None:
                reasons.append(problem)
                column = UNPRICED  # the call happened; only its price is unusable
        in_ok = tokens_valid(input_tokens)
        out_ok = tokens_valid(output_tokens)
        if not (in_ok and out_ok):
            reasons.append("invalid_tokens")
        with store.lock:
            row = store.call_row(agent_id, provider, model, reasons)
            row[0] += value
            if in_ok:
                row[INPUT_TOKENS] += cast(int, input_tokens)
            if out_ok:
                row[OUTPUT_TOKENS] += cast(int, output_tokens)
            row[column] += 1
            first = [reason for reason in reasons if store.drop(reason)]
        _warn(first)

    def _record_task_slow(self, store: Store, agent_id: object, status: object) -> None:
        text = as_text(status)
        cleaned = clean(text).lower() if text is not None else ""
        if not cleaned:
            self._count(store, ["invalid_status"])
            return
        folds: list[str] = []
        with store.lock:
            row = store.task_row(agent_id, cleaned, folds)
            row[0] += 1
            if not folds:
                store.cache_task(agent_id, status, row)
            first = [reason for reason in folds if store.drop(reason)]
        _warn(first)

    # --- cost per task (_tasks.py) -----------------------------------------------------------

    def _add_to_task(self, task_id: object, cost: float) -> None:
        reasons = self._tasks.add(task_id, cost)
        if reasons:
            self._count(self._store, reasons)

    def _task_status(self, store: Store, agent_id: object, status: object, task_id: object) -> None:
        def agent() -> str:
            with store.lock:  # its folds were counted once for this event, by the tasks counter
                return store.agent_label(agent_id, [])

        reasons = self._tasks.status(task_id, status, agent)
        if reasons:
            self._count(store, reasons)

    def _count(self, store: Store, reasons: Sequence[str]) -> None:
        with store.lock:
            first = [reason for reason in reasons if store.drop(reason)]
        _warn(first)

    def _internal_error(self) -> None:
        # A bug of ours must not reach the application either; it is counted and logged once.
        try:
            store = self._store
            with store.lock:
                first = store.drop("internal_error")
            if first:
                logger.exception("budgetwatch: internal error while recording (logged once)")
        except Exception:
            pass

    # --- pipeline and process lifecycle -------------------------------------------------------

    def _new_store(self) -> Store:
        return Store(
            max_agents=self.max_agents,
            max_series=self.max_series,
            confirm_on_export=self._app_provider is None,
        )

    def _new_pipeline(self) -> OwnedPipeline:
        assert self._settings is not None
        ref = weakref.ref(self)

        def finished(success: bool) -> None:
            telemetry = ref()
            if telemetry is not None:
                telemetry._store.export_finished(success)

        return OwnedPipeline(
            ref,
            service_name=self.service_name,
            instance_id=self._instance_id,
            namespace=self.namespace,
            currency=self.currency,
            settings=self._settings,
            export_interval_s=self.export_interval_s,
            max_agents=self.max_agents,
            finished=finished,
        )

    def _flush_once(self, timeout_s: float) -> tuple[bool, int]:
        assert self._pipeline is not None
        store = self._store
        store.start_flush()
        histograms = self._pipeline.zero_first.confirmed
        try:
            self._pipeline.force_flush(timeout_s)
        except Exception:
            logger.debug("budgetwatch: flush did not complete", exc_info=True)
        ok, announced = store.flush_result()
        return ok, announced + self._pipeline.zero_first.confirmed - histograms

    def _after_fork_in_child(self) -> None:
        """A new process: new identity, empty totals, and (if ours) a new export pipeline."""
        self._close_lock = threading.Lock()
        self._instance_id = str(uuid.uuid4())
        self._store = self._new_store()
        histogram = self._tasks.histogram  # the application's provider: the same instrument
        if self._pipeline is not None and not self._closed:
            inherited = self._pipeline
            self._pipeline = self._new_pipeline()
            meter = self._pipeline.provider.get_meter(SCOPE, _version())
            histogram = create_histogram(meter, namespace=self.namespace, currency=self.currency)
            # The inherited pipeline is silenced by its pid guards; stop its thread off the
            # fork path so a lock copied mid-use in the parent cannot block the child.
            threading.Thread(target=_stop_quietly, args=(inherited,), daemon=True).start()
        self._tasks = TaskCosts(self.max_open_tasks, histogram, self.namespace)

    def _at_exit(self) -> None:
        self.shutdown()


def _stop_quietly(pipeline: OwnedPipeline) -> None:
    with contextlib.suppress(Exception):
        pipeline.shutdown(timeout_s=1.0)


def _register_process_hooks(ref: weakref.ref[BudgetTelemetry]) -> None:
    def after_fork_in_child() -> None:
        telemetry = ref()
        if telemetry is not None:
            try:
                telemetry._after_fork_in_child()
            except Exception:
                logger.warning("budgetwatch: could not restart telemetry after fork", exc_info=True)

    def at_exit() -> None:
        telemetry = ref()
        if telemetry is not None:
            telemetry._at_exit()

    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=after_fork_in_child)
    atexit.register(at_exit)


def _warn(reasons: list[str]) -> None:
    for reason in reasons:
        logger.warning(
            "budgetwatch: dropped or folded an event: %s (logged once per reason; every "
            "occurrence is counted in <namespace>.telemetry.dropped{reason=%r})",
            reason,
            reason,
        )


def _positive(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def _version() -> str:
    from . import __version__

    return __version__
