"""The OpenTelemetry side: observable instruments over a Store, and our own export pipeline.

Instruments (contract section 2; all monotonic cumulative sums, scope `budgetwatch`), named
in the bundle spec (budgetwatch.spec): <ns>.cost {CUR}, <ns>.tokens {token}, <ns>.tasks
{task}, <ns>.calls {call}, <ns>.telemetry.dropped {event}.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

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
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource

from . import spec
from ._otlp import ExportSettings, make_exporter
from ._store import (
    COST,
    FAILED,
    INPUT_TOKENS,
    MAX_STATUSES,
    OUTPUT_TOKENS,
    PRICED,
    UNPRICED,
    Point,
    Store,
)
from ._tasks import ZeroFirst, task_cost_view

if TYPE_CHECKING:
    from .telemetry import BudgetTelemetry

SCOPE = spec.SCOPE
AGENT = spec.AGENT_ATTR
PROVIDER = spec.PROVIDER_ATTR
MODEL = spec.MODEL_ATTR
TOKEN_TYPE = spec.TOKEN_TYPE_ATTR
_TOKEN_TYPES = {INPUT_TOKENS: "input", OUTPUT_TOKENS: "output"}
_OUTCOMES = {PRICED: "priced", UNPRICED: "unpriced", FAILED: "failed"}

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


def register_instruments(
    meter: Meter,
    owner: weakref.ref[BudgetTelemetry],
    *,
    namespace: str,
    currency: str,
    owner_pid: int | None,
) -> None:
    """Create the observable counters; their callbacks read `owner`'s current Store.

    `owner_pid` set: the callbacks report nothing in any other process (a pipeline inherited
    through fork must not re-report the parent's series).
    """

    def store() -> Store | None:
        if owner_pid is not None and os.getpid() != owner_pid:
            return None
        telemetry = owner()
        return None if telemetry is None else telemetry._store

    def calls_callback(
        columns: tuple[int, ...], only_used: bool, attrs: Callable[[Point], dict[str, Any]]
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(_options: CallbackOptions) -> Iterable[Observation]:
            current = store()
            if current is None:
                return ()
            return [
                Observation(p.value, attrs(p)) for p in current.observe_calls(columns, only_used)
            ]

        return callback

    def call_attrs(point: Point) -> dict[str, Any]:
        return {AGENT: point.key[0], PROVIDER: point.key[1], MODEL: point.key[2]}

    def token_attrs(point: Point) -> dict[str, Any]:
        return {**call_attrs(point), TOKEN_TYPE: _TOKEN_TYPES[point.column]}

    def outcome_attrs(point: Point) -> dict[str, Any]:
        return {**call_attrs(point), outcome: _OUTCOMES[point.column]}

    outcome = spec.call_outcome_attr(namespace)
    status = spec.task_status_attr(namespace)

    def tasks(_options: CallbackOptions) -> Iterable[Observation]:
        current = store()
        if current is None:
            return ()
        return [
            Observation(p.value, {AGENT: p.key[0], status: p.key[1]})
            for p in current.observe_tasks()
        ]

    def dropped(_options: CallbackOptions) -> Iterable[Observation]:
        current = store()
        if current is None:
            return ()
        return [
            Observation(p.value, {spec.REASON_ATTR: p.key[0]}) for p in current.observe_dropped()
        ]

    callbacks = {
        spec.COST: calls_callback((COST,), False, call_attrs),
        spec.TOKENS: calls_callback((INPUT_TOKENS, OUTPUT_TOKENS), False, token_attrs),
        spec.CALLS: calls_callback((PRICED, UNPRICED, FAILED), True, outcome_attrs),
        spec.TASKS: tasks,
        spec.DROPPED: dropped,
    }
    for instrument, callback in callbacks.items():
        meter.create_observable_counter(
            instrument.otel_name(namespace),
            [callback],
            unit=instrument.unit or f"{{{currency}}}",
            description=instrument.description.format(currency=currency),
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
    """A MeterProvider of our own: resource, OTLP exporter and periodic reader."""

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
        max_series: int,
        max_agents: int,
        finished: Callable[[bool], None],
    ) -> None:
        self.zero_first = ZeroFirst(spec.TASK_COST.otel_name(namespace))
        exporter = GuardedExporter(make_exporter(settings, CUMULATIVE), finished, self.zero_first)
        # The SDK folds attribute sets beyond 2000 per instrument into otel.metric.overflow;
        # our Store already bounds the series, so lift the SDK's cap above our own.
        cap = 3 * max_series + (max_agents + 2) * (MAX_STATUSES + 1) + 64
        task_cap = (max_agents + 2) * len(spec.TERMINAL_STATUSES) + 1
        self.reader = PeriodicExportingMetricReader(
            exporter,
            export_interval_millis=export_interval_s * 1000.0,
            cardinality_limits={ObservableCounter: cap, Histogram: task_cap},
        )
        resource = Resource.create(
            {"service.name": service_name, "service.instance.id": instance_id}
        )
        self.provider = MeterProvider(
            metric_readers=[self.reader],
            resource=resource,
            shutdown_on_exit=False,
            views=[task_cost_view(namespace)],
        )
        register_instruments(
            self.provider.get_meter(SCOPE, _version()),
            owner,
            namespace=namespace,
            currency=currency,
            owner_pid=os.getpid(),
        )

    def force_flush(self, timeout_s: float) -> None:
        self.provider.force_flush(timeout_millis=timeout_s * 1000.0)

    def shutdown(self, timeout_s: float = 10.0) -> None:
        self.provider.shutdown(timeout_millis=timeout_s * 1000.0)


def _version() -> str:
    from . import __version__

    return __version__
