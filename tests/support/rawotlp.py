"""Raw OTLP requests, built by hand to reach the collector past the library's own checks."""

from __future__ import annotations

import time
from collections.abc import Mapping

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AggregationTemporality,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource


def attr(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def cost_request(
    agent: str,
    value: float,
    instance: str,
    service: str = "rogue",
    attributes: Mapping[str, str] | None = None,
) -> bytes:
    """One cumulative `synthorg.cost` point for `agent`, as a serialized OTLP request."""
    now = time.time_ns()
    extra = [attr(key, val) for key, val in (attributes or {}).items()]
    point = NumberDataPoint(
        as_double=value,
        start_time_unix_nano=now - 1_000_000_000,
        time_unix_nano=now,
        attributes=[attr("gen_ai.agent.id", agent), *extra],
    )
    metric = Metric(
        name="synthorg.cost",
        unit="{USD}",
        sum=Sum(
            data_points=[point],
            aggregation_temporality=AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE,
            is_monotonic=True,
        ),
    )
    request = ExportMetricsServiceRequest(
        resource_metrics=[
            ResourceMetrics(
                resource=Resource(
                    attributes=[
                        attr("service.name", service),
                        attr("service.instance.id", instance),
                    ]
                ),
                scope_metrics=[ScopeMetrics(metrics=[metric])],
            )
        ]
    )
    data: bytes = request.SerializeToString()
    return data
