"""In-process aggregation: cumulative totals per series, read at each export.

Recording an event is a cache lookup and a few additions under one lock, far cheaper than
the SDK's synchronous `Counter.add` (which hashes and sorts the attributes on every call).
Each export reads the totals (see `_pipeline`): our own pipeline turns them into data points
directly, an application's MeterProvider through observable-counter callbacks.

Bounds (so that agent ids cannot explode the number of series): at most `max_agents`
distinct agents (later ones are folded into `_overflow`), a fixed cap on distinct providers,
models and task statuses, and at most `max_series` (agent, provider, model) rows.

"A new series is first exported with value 0": each row keeps a bit mask of the points
already announced. A point not yet announced is reported as 0; it counts as announced once
an export carrying that 0 succeeded (or at once, when the application owns the exporter and
budgetwatch cannot see export results). Until then it keeps being reported as 0, so a series
born while the collector is down still reaches Prometheus as 0 first, then its true total.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from numbers import Integral, Real
from typing import Final

from ._labels import OVERFLOW, UNASSIGNED, UNKNOWN, as_text, clean, clean_agent_id

# Layout of a call row, one per (agent, provider, model).
COST: Final = 0
INPUT_TOKENS: Final = 1
OUTPUT_TOKENS: Final = 2
PRICED: Final = 3
UNPRICED: Final = 4
FAILED: Final = 5
_CALL_MASK: Final = 6

# Caps on values that are not agent ids (they come from code, but a bug could still pass
# something unbounded such as a request id).
MAX_PROVIDERS: Final = 64
MAX_MODELS: Final = 512
MAX_STATUSES: Final = 64
# Raw-argument caches (raw value -> resolved row) stop growing here; misses take the slow path.
_CACHE_FACTOR: Final = 4

# Why an event (or part of it) was dropped or folded: a small fixed set, the `reason`
# attribute of `<ns>.telemetry.dropped`.
REASONS: Final = (
    "invalid_cost_type",
    "negative_cost",
    "non_finite_cost",
    "invalid_tokens",
    "invalid_status",
    "invalid_outcome",
    "invalid_agent_id",
    "invalid_attribute",
    "agent_overflow",
    "provider_overflow",
    "model_overflow",
    "status_overflow",
    "series_overflow",
    "internal_error",
    # cost per task (_tasks.py)
    "invalid_task_id",
    "task_evicted",
    "task_evicted_closed",
    "task_already_closed",
)

CallKey = tuple[str, str, str]
TaskKey = tuple[str, str]
Row = list[float]  # counts are ints, cost a float; the last element is the announced mask


@dataclass(frozen=True, slots=True)
class Point:
    """One value to report: the row key, which column, and the value to export now."""

    key: tuple[str, ...]
    column: int
    value: float


class Store:
    """Totals for one process. After a fork the child builds a new, empty Store."""

    def __init__(self, *, max_agents: int, max_series: int, confirm_on_export: bool) -> None:
        self.lock = threading.Lock()
        self.max_agents = max_agents
        self.max_series = max_series
        self.confirm_on_export = confirm_on_export
        # Start of every cumulative series of this Store (all start at 0 with it).
        self.start_time_unix_nano = time.time_ns()
        self.calls: dict[CallKey, Row] = {}
        self.tasks: dict[TaskKey, Row] = {}
        self.dropped: dict[str, Row] = {}
        # Hot-path caches: raw arguments -> row, only for arguments that resolve without
        # any fold (a folded event must be counted each time, so it takes the slow path).
        self.call_cache: dict[tuple[object, object, object], Row] = {}
        self.task_cache: dict[tuple[object, object], Row] = {}
        self._agents: set[str] = set()
        self._providers: set[str] = set()
        self._models: set[str] = set()
        self._statuses: set[str] = set()
        self._logged: set[str] = set()
        self._pending = threading.local()

    # --- recording (called with self.lock held) ------------------------------------------

    def drop(self, reason: str) -> bool:
        """Count one dropped or folded event; True the first time this reason is seen."""
        row = self.dropped.get(reason)
        if row is None:
            row = self.dropped[reason] = [0, 0]
        row[0] += 1
        if reason in self._logged:
            return False
        self._logged.add(reason)
        return True

    def call_row(self, agent_id: object, provider: object, model: object, folds: list[str]) -> Row:
        """The row for these raw arguments, creating it; appends fold reasons to `folds`."""
        agent = self._agent(agent_id, folds)
        prov = self._bounded(provider, self._providers, MAX_PROVIDERS, "provider_overflow", folds)
        mod = self._bounded(model, self._models, MAX_MODELS, "model_overflow", folds)
        key = (agent, prov, mod)
        row = self.calls.get(key)
        if row is None:
            if len(self.calls) >= self.max_series:
                folds.append("series_overflow")
                key = (OVERFLOW, OVERFLOW, OVERFLOW)
                row = self.calls.get(key)
            if row is None:
                row = self.calls[key] = [0.0, 0, 0, 0, 0, 0, 0]
        if not folds:
            # Usually the arguments are the cleaned values themselves: share the key tuple.
            same = agent_id is agent and provider is prov and model is mod
            raw = key if same else (agent_id, provider, model)
            if len(self.call_cache) < _CACHE_FACTOR * self.max_series:
                self.call_cache[raw] = row
        return row

    def task_row(self, agent_id: object, status: str, folds: list[str]) -> Row:
        """The row for (agent, cleaned status), creating it; appends fold reasons to `folds`."""
        agent = self._agent(agent_id, folds)
        if status not in self._statuses:
            if len(self._statuses) >= MAX_STATUSES:
                folds.append("status_overflow")
                status = OVERFLOW
            else:
                self._statuses.add(status)
        key = (agent, status)
        row = self.tasks.get(key)
        if row is None:
            row = self.tasks[key] = [0, 0]
        return row

    def cache_task(self, agent_id: object, status: object, row: Row) -> None:
        if len(self.task_cache) < _CACHE_FACTOR * (self.max_agents + 2) * 4:
            self.task_cache[(agent_id, status)] = row

    def agent_label(self, agent_id: object, folds: list[str]) -> str:
        """The agent attribute value for a raw agent id (the same for every instrument)."""
        return self._agent(agent_id, folds)

    def _agent(self, agent_id: object, folds: list[str]) -> str:
        if agent_id is None:
            return UNASSIGNED
        text = as_text(agent_id)
        if text is None:
            folds.append("invalid_agent_id")
            return UNASSIGNED
        cleaned = clean_agent_id(text)
        if not cleaned:
            return UNASSIGNED
        if cleaned in self._agents:
            return cleaned
        if len(self._agents) >= self.max_agents:
            folds.append("agent_overflow")
            return OVERFLOW
        self._agents.add(cleaned)
        return cleaned

    @staticmethod
    def _bounded(value: object, seen: set[str], cap: int, reason: str, folds: list[str]) -> str:
        if value is None:
            return UNKNOWN
        text = as_text(value)
        if text is None:
            folds.append("invalid_attribute")
            return UNKNOWN
        cleaned = clean(text) or UNKNOWN
        if cleaned in seen or cleaned == UNKNOWN:
            return cleaned
        if len(seen) >= cap:
            folds.append(reason)
            return OVERFLOW
        seen.add(cleaned)
        return cleaned

    # --- reading (collection) --------------------------------------------------------------

    def observe_calls(self, columns: tuple[int, ...], only_used: bool) -> list[Point]:
        """Points of the call table for these columns; `only_used` skips zero counters."""
        return self._observe(self.calls, columns, only_used)

    def observe_tasks(self) -> list[Point]:
        return self._observe(self.tasks, (0,), False)

    def observe_dropped(self) -> list[Point]:
        return self._observe({(k,): v for k, v in self.dropped.items()}, (0,), False)

    def _observe(
        self,
        table: dict[CallKey, Row] | dict[TaskKey, Row] | dict[tuple[str], Row],
        columns: tuple[int, ...],
        only_used: bool,
    ) -> list[Point]:
        points: list[Point] = []
        newly: list[tuple[Row, int]] = []
        with self.lock:
            for key, row in table.items():
                mask = int(row[-1])
                for column in columns:
                    value = row[column]
                    if only_used and not value:
                        continue
                    bit = 1 << column
                    if mask & bit:
                        points.append(Point(key, column, value))
                    else:
                        points.append(Point(key, column, value * 0))  # 0 of the same type
                        newly.append((row, bit))
            if newly and not self.confirm_on_export:
                _announce(newly)
        if newly and self.confirm_on_export:
            pending: list[tuple[Row, int]] | None = getattr(self._pending, "rows", None)
            if pending is None:
                self._pending.rows = pending = []
            pending.extend(newly)
        return points

    def export_finished(self, success: bool) -> None:
        """An export from this thread ended: zeros it carried count as announced on success.

        The SDK's reader collects (running the callbacks above) and exports in the same
        thread, so the thread-local list holds exactly what this export carried.
        """
        local = self._pending
        pending: list[tuple[Row, int]] = getattr(local, "rows", None) or []
        local.rows = []
        local.last_ok = success
        local.announced = len(pending) if success else 0
        if success and pending:
            with self.lock:
                _announce(pending)

    def start_flush(self) -> None:
        """Forget the previous result of an export from this thread (see `flush_result`)."""
        self._pending.last_ok = None
        self._pending.announced = 0

    def flush_result(self) -> tuple[bool, int]:
        """(did the export since `start_flush` succeed, how many zeros it announced).

        No export at all (nothing recorded yet) counts as success.
        """
        last_ok: bool | None = getattr(self._pending, "last_ok", None)
        announced: int = getattr(self._pending, "announced", 0)
        return last_ok is not False, announced

    def has_unannounced(self) -> bool:
        with self.lock:
            return any(_unannounced(t) for t in (self.calls, self.tasks, self.dropped))


def _announce(rows: list[tuple[Row, int]]) -> None:
    for row, bit in rows:
        row[-1] = int(row[-1]) | bit


def _unannounced(table: dict[CallKey, Row] | dict[TaskKey, Row] | dict[str, Row]) -> bool:
    for row in table.values():
        mask = int(row[-1])
        if len(row) == 2:
            if not mask & 1:
                return True
            continue
        for column in (COST, INPUT_TOKENS, OUTPUT_TOKENS, PRICED, UNPRICED, FAILED):
            if (column <= OUTPUT_TOKENS or row[column]) and not mask & (1 << column):
                return True
    return False


# --- validation of numbers (slow path; the hot path checks exact float/int types first) -----


def cost_problem(cost: object) -> tuple[float, str | None]:
    """(cost as float, None) when valid, else (0.0, the drop reason)."""
    if isinstance(cost, bool) or not isinstance(cost, Real | Decimal):
        return 0.0, "invalid_cost_type"
    try:
        value = float(cost)
    except (TypeError, ValueError, OverflowError):
        return 0.0, "invalid_cost_type"
    if not math.isfinite(value):
        return 0.0, "non_finite_cost"
    if value < 0:
        return 0.0, "negative_cost"
    return value, None


def tokens_valid(tokens: object) -> bool:
    return isinstance(tokens, Integral) and not isinstance(tokens, bool) and int(tokens) >= 0
