"""A real OTLP/HTTP metrics receiver for tests: decodes ExportMetricsServiceRequest.

    with OtlpReceiver() as receiver:
        telemetry = BudgetTelemetry("svc", endpoint=receiver.endpoint, ...)
        ...
        receiver.wait_for(lambda r: r.value("synthorg.cost", {...}) == 1.5)

`receiver.status = 503` makes it refuse exports (the body is not recorded) until set back
to 200, to play a collector that is down; `receiver.delay_s` makes it answer slowly. Every
accepted request is kept, decoded, in arrival order (`points`), so tests can check the whole
sequence of values a series took. `sdk_values` reads an SDK InMemoryMetricReader alike.
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality
from opentelemetry.sdk.metrics.export import InMemoryMetricReader


def any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return None if kind is None else getattr(value, kind)


@dataclass(frozen=True)
class Point:
    """One data point as received, with everything a test may check."""

    request: int  # index of the accepted request it came in
    resource: Mapping[str, Any]
    scope: str
    metric: str
    unit: str
    kind: str  # "sum", "gauge", ...
    monotonic: bool
    temporality: str  # "cumulative" / "delta" / "unspecified"
    attributes: Mapping[str, Any]
    value: float
    start_time_unix_nano: int
    time_unix_nano: int

    @property
    def instance(self) -> str:
        return str(self.resource.get("service.instance.id"))


@dataclass(frozen=True)
class HistogramPoint:
    """One exponential-histogram data point as received."""

    instance: str
    unit: str
    temporality: int
    attributes: Mapping[str, Any]
    count: int
    sum: float
    scale: int
    zero_count: int
    bucket_counts: tuple[int, ...]
    time_unix_nano: int


class OtlpReceiver:
    """OTLP/HTTP on 127.0.0.1 (a free port), recording every accepted export."""

    def __init__(self, *, keep: bool = True) -> None:
        """`keep=False`: keep an empty request in place of each (to measure the sender)."""
        self.keep = keep
        self.status = 200
        self.delay_s = 0.0
        self.refused = 0  # requests answered with a non-200 status
        self.requests: list[ExportMetricsServiceRequest] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                if receiver.status != 200:
                    with receiver._lock:
                        receiver.refused += 1
                    self.send_response(receiver.status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                encoding = self.headers.get("Content-Encoding", "")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                request = ExportMetricsServiceRequest()
                request.ParseFromString(body)
                with receiver._changed:
                    if not receiver.keep:
                        request = ExportMetricsServiceRequest()
                    receiver.requests.append(request)
                    receiver.headers.append({k.lower(): v for k, v in self.headers.items()})
                    receiver._changed.notify_all()
                answer = ExportMetricsServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        """The full metrics endpoint (what OTEL_EXPORTER_OTLP_METRICS_ENDPOINT would hold)."""
        return f"{self.base_url}/v1/metrics"

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- reading what arrived ---------------------------------------------------------------

    def points(self, metric: str | None = None) -> list[Point]:
        """Every received data point (of `metric`, if given), in arrival order."""
        with self._lock:
            requests = list(self.requests)
        return [
            p for i, r in enumerate(requests) for p in _points(i, r) if metric in (None, p.metric)
        ]

    def histograms(self, metric: str) -> list[HistogramPoint]:
        """Every received exponential-histogram point of `metric`, in arrival order."""
        with self._lock:
            requests = list(self.requests)
        return [
            HistogramPoint(
                instance=str(
                    {kv.key: any_value(kv.value) for kv in rm.resource.attributes}.get(
                        "service.instance.id"
                    )
                ),
                unit=m.unit,
                temporality=m.exponential_histogram.aggregation_temporality,
                attributes={kv.key: any_value(kv.value) for kv in dp.attributes},
                count=dp.count,
                sum=dp.sum,
                scale=dp.scale,
                zero_count=dp.zero_count,
                bucket_counts=tuple(dp.positive.bucket_counts),
                time_unix_nano=dp.time_unix_nano,
            )
            for r in requests
            for rm in r.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == metric and m.WhichOneof("data") == "exponential_histogram"
            for dp in m.exponential_histogram.data_points
        ]

    def series(self, metric: str) -> dict[tuple[str, frozenset[tuple[str, Any]]], list[float]]:
        """(instance, attributes) -> the values that series took, in arrival order."""
        out: dict[tuple[str, frozenset[tuple[str, Any]]], list[float]] = {}
        for p in self.points(metric):
            out.setdefault((p.instance, frozenset(p.attributes.items())), []).append(p.value)
        return out

    def latest(
        self, metric: str, instance: str | None = None
    ) -> dict[frozenset[tuple[str, Any]], float]:
        """attributes -> last value received (for one instance, if given)."""
        return {
            attrs: values[-1]
            for (inst, attrs), values in self.series(metric).items()
            if instance in (None, inst)
        }

    def value(
        self, metric: str, attributes: Mapping[str, Any], instance: str | None = None
    ) -> float | None:
        """Last value of the series with exactly these attributes, or None."""
        return self.latest(metric, instance).get(frozenset(attributes.items()))

    def wait_for(
        self, check: Callable[[OtlpReceiver], bool], timeout: float = 10.0, what: str = "data"
    ) -> None:
        deadline = time.monotonic() + timeout
        while not check(self):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
            with self._changed:
                self._changed.wait(min(remaining, 0.1))


def sdk_values(reader: InMemoryMetricReader) -> dict[tuple[str, frozenset[tuple[str, Any]]], float]:
    """One collection of an SDK InMemoryMetricReader: (metric, attributes) -> value."""
    data = reader.get_metrics_data()
    out: dict[tuple[str, frozenset[tuple[str, Any]]], float] = {}
    if data is None:
        return out
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for dp in metric.data.data_points:
                    if not hasattr(dp, "value"):
                        continue  # a histogram
                    out[(metric.name, frozenset(dict(dp.attributes or {}).items()))] = float(
                        dp.value  # type: ignore[union-attr]
                    )
    return out


def _points(index: int, request: ExportMetricsServiceRequest) -> Iterator[Point]:
    for rm in request.resource_metrics:
        resource = {kv.key: any_value(kv.value) for kv in rm.resource.attributes}
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                kind = metric.WhichOneof("data")
                if kind not in ("sum", "gauge"):
                    continue  # histograms: OtlpReceiver.histograms
                data = getattr(metric, kind)
                monotonic = bool(getattr(data, "is_monotonic", False))
                temporality = (
                    AggregationTemporality.Name(getattr(data, "aggregation_temporality", 0))
                    .removeprefix("AGGREGATION_TEMPORALITY_")
                    .lower()
                )
                for dp in data.data_points:
                    which = dp.WhichOneof("value")
                    value = float(getattr(dp, which)) if which else float("nan")
                    yield Point(
                        request=index,
                        resource=resource,
                        scope=sm.scope.name,
                        metric=metric.name,
                        unit=metric.unit,
                        kind=kind,
                        monotonic=monotonic,
                        temporality=temporality,
                        attributes={kv.key: any_value(kv.value) for kv in dp.attributes},
                        value=value,
                        start_time_unix_nano=dp.start_time_unix_nano,
                        time_unix_nano=dp.time_unix_nano,
                    )
