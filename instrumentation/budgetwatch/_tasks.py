"""Cost per task: the open-task table and the `<ns>.task.cost` exponential histogram.

`record_cost(..., task_id=T)` adds the call's cost to T's running sum while T is open; a
terminal `record_task(..., task_id=T)` closes T and records its sum, once, in the histogram
(contract section 8). Per process, and bounded:

- at most `max_open` open tasks; opening one more evicts the oldest opened (`task_evicted`);
- ids of evicted and closed tasks are remembered (at most `max_open` of them, oldest
  forgotten first), so that an evicted task's terminal status is not recorded as a task that
  cost 0 (`task_evicted_closed`), and a task closed twice, or charged after it closed, is not
  recorded twice (`task_already_closed`). A non-terminal status reopens a closed task (an
  interrupted task resumed), never an evicted one.

The histogram is an SDK Histogram with base-2 exponential buckets (`task_cost_view`): the
collector's Prometheus remote-write exporter turns it into a Prometheus native histogram,
where `histogram_fraction(0, X, ...)` answers "share of tasks over X" for any X.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Final
from uuid import UUID

from opentelemetry.sdk.metrics.export import (
    Buckets,
    ExponentialHistogram,
    ExponentialHistogramDataPoint,
    Metric,
    MetricsData,
)

from . import spec
from ._labels import as_text, clean

if TYPE_CHECKING:
    from opentelemetry.metrics import Histogram, Meter
    from opentelemetry.sdk.metrics.view import View

Reasons = tuple[str, ...]  # drop reasons an event caused, usually none

# Task ids are UUIDs or short keys; a longer one is a bug (a prompt, a stack trace).
MAX_TASK_ID_LENGTH: Final = 256
TERMINAL: Final = frozenset(spec.TERMINAL_STATUSES)

# Buckets of the histogram. The SDK starts at MAX_SCALE and halves its resolution whenever a
# series' values need more than MAX_BUCKETS buckets. Prometheus stores at most scale 8 (0.27 %
# buckets; the remote-write exporter scales finer histograms down to it): starting there loses
# nothing and keeps the counts of a series of close costs short. 1,024 buckets keep scale 7
# (0.54 %) over costs spanning 2.4 decades and scale 6 (1.09 %) over 4.8 decades. Worst case
# per series: a list of 1,024 counts in the SDK and 1 KB of (mostly zero) counts per export.
MAX_SCALE: Final = 8
MAX_BUCKETS: Final = 1024


def task_cost_view(namespace: str = "synthorg") -> View:
    """The SDK View giving `<namespace>.task.cost` its base-2 exponential buckets.

    budgetwatch's own pipeline uses it; an application passing its own `meter_provider`
    adds it to that provider (`MeterProvider(views=[task_cost_view("synthorg")], ...)`),
    else the SDK's default explicit buckets (0, 5, 10, ... 10000) make the histogram useless
    for task costs.
    """
    from opentelemetry.sdk.metrics import Histogram as SdkHistogram
    from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View

    return View(
        instrument_type=SdkHistogram,
        instrument_name=spec.TASK_COST.otel_name(namespace),
        meter_name=spec.SCOPE,
        aggregation=ExponentialBucketHistogramAggregation(
            max_size=MAX_BUCKETS, max_scale=MAX_SCALE
        ),
    )


def create_histogram(meter: Meter, *, namespace: str, currency: str) -> Histogram:
    instrument = spec.TASK_COST
    return meter.create_histogram(
        instrument.otel_name(namespace),
        unit=instrument.unit or f"{{{currency}}}",
        description=instrument.description.format(currency=currency),
    )


def task_key(task_id: object) -> str | None:
    """The id as a dict key, or None when it is not a usable id (blank, huge, or neither a
    str, an int nor a UUID: ids from a database are often numbers or UUIDs; 42 and "42" are
    the same task)."""
    if isinstance(task_id, int | UUID) and not isinstance(task_id, bool):
        return str(task_id)
    text = as_text(task_id)
    if text is None or len(text) > MAX_TASK_ID_LENGTH or not text.strip():
        return None
    return text


class TaskCosts:
    """The open tasks of one process and the histogram their totals go to (a forked child
    builds new ones)."""

    def __init__(self, max_open: int, histogram: Histogram, namespace: str) -> None:
        self.open = OpenTasks(max_open)
        self.histogram = histogram
        self._status_attr = spec.task_status_attr(namespace)

    def __len__(self) -> int:
        return len(self.open)

    def add(self, task_id: object, cost: float) -> Reasons:
        return self.open.add(task_id, cost)

    def status(self, task_id: object, status: object, agent: Callable[[], str]) -> Reasons:
        """A task entered `status`; `agent()` gives the agent attribute if a total is recorded."""
        text = as_text(status)
        cleaned = clean(text).lower() if text is not None else ""
        if not cleaned:
            return ()  # counted as invalid_status already: no status, no task change
        if cleaned not in TERMINAL:
            return self.open.touch(task_id)
        total, reasons = self.open.close(task_id)
        if total is not None:
            self.histogram.record(total, {spec.AGENT_ATTR: agent(), self._status_attr: cleaned})
        return reasons


class OpenTasks:
    """task id -> cost so far, for the tasks of one process. Thread-safe.

    Every method returns the drop reasons the event caused (usually none); the caller counts
    them in `<ns>.telemetry.dropped`.
    """

    def __init__(self, max_open: int) -> None:
        self.lock = threading.Lock()
        self.max_open = max_open
        self._open: OrderedDict[str, float] = OrderedDict()  # oldest opened first
        self._gone: OrderedDict[str, bool] = OrderedDict()  # id -> evicted (else closed)

    def __len__(self) -> int:
        return len(self._open)

    def add(self, task_id: object, cost: float) -> Reasons:
        """Add `cost` to the task (opening it when new)."""
        # Hot path: a known open task.
        if type(task_id) is str:
            with self.lock:
                total = self._open.get(task_id)
                if total is not None:
                    self._open[task_id] = total + cost
                    return ()
        key = task_key(task_id)
        if key is None:
            return ("invalid_task_id",)
        with self.lock:
            if key in self._open:
                self._open[key] += cost
                return ()
            evicted = self._gone.get(key)
            if evicted is not None:
                # Its total is unknown (evicted) or already recorded (closed): leave it out.
                return () if evicted else ("task_already_closed",)
            return self._open_locked(key, cost)

    def touch(self, task_id: object) -> Reasons:
        """A non-terminal status: open the task at cost 0 unless open (or evicted)."""
        key = task_key(task_id)
        if key is None:
            return ("invalid_task_id",)
        with self.lock:
            if key in self._open:
                return ()
            evicted = self._gone.get(key)
            if evicted:
                return ()  # stays out: a reopened evicted task would report a partial sum
            if evicted is not None:
                del self._gone[key]  # a closed task resumed
            return self._open_locked(key, 0.0)

    def close(self, task_id: object) -> tuple[float | None, Reasons]:
        """A terminal status: (the task's total to record, or None; drop reasons).

        A task never seen cost nothing (it made no priced call): its total is 0.
        """
        key = task_key(task_id)
        if key is None:
            return None, ("invalid_task_id",)
        with self.lock:
            total = self._open.pop(key, None)
            if total is None:
                evicted = self._gone.get(key)
                if evicted is not None:
                    return None, ("task_evicted_closed" if evicted else "task_already_closed",)
                total = 0.0
            self._forget_locked(key, evicted=False)
            return total, ()

    def _open_locked(self, key: str, cost: float) -> Reasons:
        reasons: Reasons = ()
        if len(self._open) >= self.max_open:
            oldest, _ = self._open.popitem(last=False)
            self._forget_locked(oldest, evicted=True)
            reasons = ("task_evicted",)
        self._open[key] = cost
        return reasons

    def _forget_locked(self, key: str, *, evicted: bool) -> None:
        self._gone[key] = evicted
        self._gone.move_to_end(key)
        if len(self._gone) > self.max_open:
            self._gone.popitem(last=False)


class ZeroFirst:
    """ "A new series is first exported as 0" (contract section 2), for the task histogram of
    budgetwatch's own pipeline, as the Store does for the counters: a histogram series not yet
    announced is exported empty (count 0) in place of its point, so that Prometheus counts its
    first tasks; it counts as announced once an export carrying the empty point succeeded, and
    is exported as it is from then on (`force_flush` exports again at once).

    Not both in one export (an empty point 1 ms before the real one): an export that reached
    Prometheus but failed to answer would then be repeated as real, empty, real, which
    Prometheus reads as a counter reset and counts the first tasks twice.

    With an application-owned provider budgetwatch does not see the exports: no empty point.
    """

    def __init__(self, metric_name: str) -> None:
        self._name = metric_name
        self._lock = threading.Lock()
        self._announced: set[frozenset[tuple[str, object]]] = set()
        self.confirmed = 0  # series announced so far (force_flush: export again if it grew)

    def rewrite(self, data: MetricsData) -> tuple[MetricsData, Callable[[], None]]:
        """(`data` with unannounced series emptied, what to call once its export succeeded)."""
        new_keys: list[frozenset[tuple[str, object]]] = []
        resources = []
        for rm in data.resource_metrics:
            scopes = []
            for sm in rm.scope_metrics:
                metrics = [
                    self._with_zeros(m, new_keys) if m.name == self._name else m for m in sm.metrics
                ]
                scopes.append(replace(sm, metrics=metrics))
            resources.append(replace(rm, scope_metrics=scopes))
        if not new_keys:
            return data, _nothing

        def confirm() -> None:
            with self._lock:
                self._announced.update(new_keys)
                self.confirmed += len(new_keys)

        return MetricsData(resource_metrics=resources), confirm

    def _with_zeros(self, metric: Metric, new_keys: list[frozenset[tuple[str, object]]]) -> Metric:
        histogram = metric.data
        if not isinstance(histogram, ExponentialHistogram):
            return metric
        points: list[ExponentialHistogramDataPoint] = []
        with self._lock:
            for point in histogram.data_points:
                key = frozenset((point.attributes or {}).items())
                if key not in self._announced and point.count:
                    new_keys.append(key)
                    points.append(_empty(point))
                else:
                    points.append(point)
        return replace(metric, data=replace(histogram, data_points=points))


def _empty(point: ExponentialHistogramDataPoint) -> ExponentialHistogramDataPoint:
    return replace(
        point,
        count=0,
        sum=0.0,
        zero_count=0,
        positive=Buckets(offset=0, bucket_counts=[]),
        negative=Buckets(offset=0, bucket_counts=[]),
        min=0.0,
        max=0.0,
        exemplars=[],
    )


def _nothing() -> None:
    pass
