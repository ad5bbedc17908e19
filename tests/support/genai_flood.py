"""A flood of distinct agents from one token-only source, as one raw OTLP request."""

from __future__ import annotations

import time
import urllib.request
import uuid

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from .rawotlp import attr


def push_token_flood(endpoint: str, service: str, agents: int, model: str) -> None:
    """`agents` distinct gen_ai.agent.name values, one input and one output token each."""
    now = time.time_ns()
    points = [
        HistogramDataPoint(
            start_time_unix_nano=now - 1_000_000,
            time_unix_nano=now,
            count=1,
            sum=1.0,
            bucket_counts=[1],
            attributes=[
                attr("gen_ai.agent.name", f"flood-{i:05d}"),
                attr("gen_ai.provider.name", "acme"),
                attr("gen_ai.request.model", model),
                attr("gen_ai.token.type", token_type),
            ],
        )
        for i in range(agents)
        for token_type in ("input", "output")
    ]
    metric = Metric(
        name="gen_ai.client.token.usage",
        unit="{token}",
        histogram=Histogram(
            data_points=points,
            aggregation_temporality=AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE,
        ),
    )
    request = ExportMetricsServiceRequest(
        resource_metrics=[
            ResourceMetrics(
                resource=Resource(
                    attributes=[
                        attr("service.name", service),
                        attr("service.instance.id", str(uuid.uuid4())),
                    ]
                ),
                scope_metrics=[
                    ScopeMetrics(scope=InstrumentationScope(name="flood"), metrics=[metric])
                ],
            )
        ]
    )
    req = urllib.request.Request(
        f"{endpoint}/v1/metrics",
        data=request.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as response:
        assert response.status == 200, response.status
