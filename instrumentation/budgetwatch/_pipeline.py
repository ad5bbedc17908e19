"""The OpenTelemetry side: the Store's counters, exported by our own pipeline or read by
an application's MeterProvider.

Counters (contract section 2; all monotonic cumulative sums, scope `budgetwatch`), named
in the bundle spec (budgetwatch.spec): <ns>.cost {CUR}, <ns>.tokens {token}, <ns>.tasks
{task}, <ns>.calls {call}, <ns>.telemetry.dropped {event}.

Our own pipeline (OwnedPipeline) builds their data points from the Store at each export
(StoreReader): the SDK then holds no state per series. On an application's MeterProvider
they are observable counters, for which the SDK keeps ~1.3 KB per series.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, detach, set_value
from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    MeterProvider,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Metric,
    MetricExporter,
    MetricExportResult,
    MetricReader,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from . import spec
from ._otlp import ExportSettings, make_exporter
from ._store import (
    COST,
    FAILED,
    INPUT_TOKENS,
    OUTPUT_TOKENS,
    PRICED,
    UNPRICED,
    Point,
    Store,
)
from ._tasks import ZeroFirst, task_cost_view

if TYPE_CHECKING:
    from .telemetry import BudgetTelemetry

logger = logging.getLogger("budgetwatch")

SCOPE = spec.SCOPE
AGENT = spec.AGENT_ATTR
PROVIDER = spec.PROVIDER_ATTR
MODEL = spec.MODEL_ATTR
TOKEN_TYPE = spec.TOKEN_TYPE_ATTR
_TOKEN_TYPES = {INPUT_TOKENS: "input", OUTPUT_TOKENS: "output"}
_OUTCOMES = {PRICED: "priced", UNPRICED: "unpriced", FAILED: "failed"}

# Deadline of a periodic export, retries included (the SDK reader's default).
_EXPORT_TIMEOUT_S = 30.0

# Cumulative for every instrument kind, whatever OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE
# says: the recording rules subtract cumulative totals.
CUMULATIVE: dict[type, AggregationTemporality] = {
    kind: AggregationTemporality.CUMULATIVE
    for kind in (
        Counter,
        UpDownCounter,
        Histogram,
        ObservableCounter,
        ObservableUpDownCounter,
        ObservableGauge,
    )
}


Attrs = Callable[[Point], dict[str, Any]]


@dataclass(frozen=True)
class StoreCounter:
    """One counter backed by the Store: its OTLP identity, its points, their attributes."""

    name: str
    unit: str
    description: str
    read: Callable[[Store], list[Point]]
    attrs: Attrs


def store_counters(namespace: str, currency: str) -> tuple[StoreCounter, ...]:
    """The Store-backed counters, in export order (contract section 2)."""
    outcome = spec.call_outcome_attr(namespace)
    status = spec.task_status_attr(namespace)

    def call_attrs(point: Point) -> dict[str, Any]:
        return {AGENT: point.key[0], PROVIDER: point.key[1], MODEL: point.key[2]}

    def token_attrs(point: Point) -> dict[str, Any]:
        return {**call_attrs(point), TOKEN_TYPE: _TOKEN_TYPES[point.column]}

    def outcome_attrs(point: Point) -> dict[str, Any]:
        return {**call_attrs(point), outcome: _OUTCOMES[point.column]}

    def task_attrs(point: Point) -> dict[str, Any]:
        return {AGENT: point.key[0], status: point.key[1]}

    def reason_attrs(point: Point) -> dict[str, Any]:
        return {spec.REASON_ATTR: point.key[0]}

    readers: tuple[tuple[spec.Instrument, Callable[[Store], list[Point]], Attrs], ...] = (
        (spec.COST, lambda s: s.observe_calls((COST,), False), call_attrs),
        (spec.TOKENS, lambda s: s.observe_calls((INPUT_TOKENS, OUTPUT_TOKENS), False), token_attrs),
        (spec.CALLS, lambda s: s.observe_calls((PRICED, UNPRICED, FAILED), True), outcome_attrs),
        (spec.TASKS, Store.observe_tasks, task_attrs),
        (spec.DROPPED, Store.observe_dropped, reason_attrs),
    )
    return tuple(
        StoreCounter(
            name=instrument.otel_name(namespace),
            unit=instrument.unit or f"{{{currency}}}",
            description=instrument.description.format(currency=currency),
            read=read,
            attrs=attrs,
        )
        for instrument, read, attrs in readers
    )


def current_store(
    owner: weakref.ref[BudgetTelemetry], owner_pid: int | None
) -> Callable[[], Store | None]:
    """Reads `owner`'s current Store; with `owner_pid` set, None in any other process (a
    pipeline inherited through fork must not re-report the parent's series)."""

    def store() -> Store | None:
        if owner_pid is not None and os.getpid() != owner_pid:
            return None
        telemetry = owner()
        return None if telemetry is None else telemetry._store

    return store


def register_instruments(
    meter: Meter,
    owner: weakref.ref[BudgetTelemetry],
    *,
    namespace: str,
    currency: str,
    owner_pid: int | None,
    observe_store: bool = True,
) -> None:
    """Create the SDK instruments of budgetwatch on `meter`.

    `observe_store`: the Store's counters as observable counters whose callbacks read
    `owner`'s current Store (for an application-owned MeterProvider). Our own pipeline
    passes False: its StoreExport exports the Store's totals without SDK instruments.
    """
    if observe_store:
        store = current_store(owner, owner_pid)

        def callback(counter: StoreCounter) -> Callable[[CallbackOptions], Iterable[Observation]]:
            def observe(_options: CallbackOptions) -> Iterable[Observation]:
                current = store()
                if current is None:
                    return ()
                return [Observation(p.value, counter.attrs(p)) for p in counter.read(current)]

            return observe

        for counter in store_counters(namespace, currency):
            meter.create_observable_counter(
                counter.name,
                [callback(counter)],
                unit=counter.unit,
                description=counter.description,
            )


class SdkInstruments(MetricReader):
    """The reader of our own MeterProvider, collected by StoreExport at each export: what
    SDK instruments registered there measured (the Store's counters are not among them)."""

    def __init__(self, task_series: int) -> None:
        super().__init__(
            preferred_temporality=CUMULATIVE, cardinality_limits={Histogram: task_series}
        )
        self._local = threading.local()

    def take(self, timeout_millis: float) -> MetricsData | None:
        self._local.data = None
        self.collect(timeout_millis=timeout_millis)  # calls _receive_metrics in this thread
        data: MetricsData | None = self._local.data
        self._local.data = None
        return data

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        self._local.data = metrics_data

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass


class StoreExport:
    """Our pipeline's periodic export: each time, the Store's totals are built straight
    into OTLP data points, merged with what the SDK instruments of our provider collected,
    and exported in one request. The SDK thus keeps no state per Store series (for an SDK
    observable counter it keeps ~1.3 KB per series, forever).

    One export at a time, each exported before the next one reads the Store: a series' 0
    never arrives after its total. Inert in a forked child (which has its own pipeline).
    """

    def __init__(
        self,
        exporter: MetricExporter,
        *,
        interval_s: float,
        store: Callable[[], Store | None],
        counters: tuple[StoreCounter, ...],
        sdk: SdkInstruments,
        resource: Resource,
        scope: InstrumentationScope,
    ) -> None:
        self.exporter = exporter
        self._interval_s = interval_s
        self._store = store
        self._counters = counters
        self._sdk = sdk
        self._resource = resource
        self._scope = scope
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._last_timeout_s = _EXPORT_TIMEOUT_S
        self._thread = threading.Thread(target=self._run, name="budgetwatch-export", daemon=True)
        self._thread.start()

    def export(self, timeout_s: float) -> None:
        """Collect and export once (errors are logged, never raised)."""
        if os.getpid() != self._pid:
            return
        with self._lock:
            try:
                data = self._merge(self._store_metrics(), self._sdk.take(timeout_s * 1000.0))
                if data is None:
                    return
                # Our export's HTTP/gRPC calls must not be traced by the application's
                # instrumentation (as the SDK's own readers do).
                token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
                try:
                    self.exporter.export(data, timeout_millis=timeout_s * 1000.0)
                finally:
                    detach(token)
            except Exception:
                logger.exception("budgetwatch: export failed")

    def shutdown(self, timeout_s: float) -> None:
        """Stop the periodic thread after one last export, close the exporter. Waits at
        most `timeout_s` for that export (a collector that is down must not hold up exit)."""
        if os.getpid() != self._pid or self._stopped.is_set():
            return
        deadline = time.monotonic() + timeout_s
        self._last_timeout_s = timeout_s
        self._stopped.set()
        self._thread.join(timeout_s)
        self.exporter.shutdown(timeout_millis=max(deadline - time.monotonic(), 0.1) * 1000.0)

    def _run(self) -> None:
        while not self._stopped.wait(self._interval_s):
            self.export(_EXPORT_TIMEOUT_S)
        self.export(self._last_timeout_s)

    def _store_metrics(self) -> list[Metric]:
        store = self._store()
        if store is None:
            return []
        read = [(counter, counter.read(store)) for counter in self._counters]
        start, now = store.start_time_unix_nano, time.time_ns()
        return [
            Metric(
                name=counter.name,
                description=counter.description,
                unit=counter.unit,
                data=Sum(
                    data_points=[
                        NumberDataPoint(
                            attributes=counter.attrs(p),
                            start_time_unix_nano=start,
                            time_unix_nano=now,
                            value=p.value,
                        )
                        for p in points
                    ],
                    aggregation_temporality=AggregationTemporality.CUMULATIVE,
                    is_monotonic=True,
                ),
            )
            for counter, points in read
            if points
        ]

    def _merge(self, metrics: list[Metric], sdk_data: MetricsData | None) -> MetricsData | None:
        scopes: list[ScopeMetrics] = []
        if sdk_data is not None:
            for resource_metrics in sdk_data.resource_metrics:  # one: our provider's resource
                scopes.extend(resource_metrics.scope_metrics)
        if metrics:
            # Our scope's SDK instruments go in the same ScopeMetrics as the Store's counters.
            same = [m for s in scopes if s.scope == self._scope for m in s.metrics]
            scopes = [s for s in scopes if s.scope != self._scope]
            scopes.insert(0, ScopeMetrics(scope=self._scope, metrics=metrics + same, schema_url=""))
        if not scopes:
            return None
        return MetricsData(
            resource_metrics=[
                ResourceMetrics(
                    resource=self._resource,
                    scope_metrics=scopes,
                    schema_url=self._resource.schema_url,
                )
            ]
        )


class GuardedExporter(MetricExporter):
    """Wraps the OTLP exporter: reports export results to the Store, and goes silent in a
    forked child (whose own pipeline exports under its own instance id)."""

    def __init__(
        self,
        inner: MetricExporter,
        finished: Callable[[bool], None],
        zero_first: ZeroFirst | None = None,
    ) -> None:
        super().__init__(preferred_temporality=CUMULATIVE)
        self._inner = inner
        self._finished = finished
        self._zero_first = zero_first
        self._pid = os.getpid()

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        if os.getpid() != self._pid:
            return MetricExportResult.SUCCESS
        ok = False
        try:
            confirm = None
            if self._zero_first is not None:
                metrics_data, confirm = self._zero_first.rewrite(metrics_data)
            result = self._inner.export(metrics_data, timeout_millis=timeout_millis)
            ok = result is MetricExportResult.SUCCESS
            if ok and confirm is not None:
                confirm()
            return result
        finally:
            self._finished(ok)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        if os.getpid() != self._pid:
            return True
        return self._inner.force_flush(timeout_millis=timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        if os.getpid() == self._pid:
            self._inner.shutdown(timeout_millis=timeout_millis)


class OwnedPipeline:
    """Our own export: resource, OTLP exporter, the periodic StoreExport, and a MeterProvider
    for budgetwatch's SDK instruments (whose data StoreExport sends with the Store's)."""

    def __init__(
        self,
        owner: weakref.ref[BudgetTelemetry],
        *,
        service_name: str,
        instance_id: str,
        namespace: str,
        currency: str,
        settings: ExportSettings,
        export_interval_s: float,
        max_agents: int,
        finished: Callable[[bool], None],
    ) -> None:
        self.zero_first = ZeroFirst(spec.TASK_COST.otel_name(namespace))
        exporter = GuardedExporter(make_exporter(settings, CUMULATIVE), finished, self.zero_first)
        resource = Resource.create(
            {"service.name": service_name, "service.instance.id": instance_id}
        )
        owner_pid = os.getpid()
        # The SDK folds attribute sets beyond 2000 per instrument into otel.metric.overflow:
        # the task-cost histogram has one per agent (and _unassigned, _overflow) and status.
        sdk = SdkInstruments(task_series=(max_agents + 2) * len(spec.TERMINAL_STATUSES) + 1)
        self.provider = MeterProvider(
            metric_readers=[sdk],
            resource=resource,
            shutdown_on_exit=False,
            views=[task_cost_view(namespace)],
        )
        register_instruments(
            self.provider.get_meter(SCOPE, _version()),
            owner,
            namespace=namespace,
            currency=currency,
            owner_pid=owner_pid,
            observe_store=False,
        )
        self.export = StoreExport(
            exporter,
            interval_s=export_interval_s,
            store=current_store(owner, owner_pid),
            counters=store_counters(namespace, currency),
            sdk=sdk,
            resource=resource,
            scope=InstrumentationScope(SCOPE, _version()),
        )

    def force_flush(self, timeout_s: float) -> None:
        self.export.export(timeout_s)

    def shutdown(self, timeout_s: float = 10.0) -> None:
        self.export.shutdown(timeout_s)
        self.provider.shutdown(timeout_millis=timeout_s * 1000.0)


def _version() -> str:
    from . import __version__

    return __version__
