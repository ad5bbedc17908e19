"""Exporter settings from arguments and the standard OTEL_* variables; gRPC end to end."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from concurrent import futures

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GrpcExporter,
)
from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
    OTLPMetricExporter as HttpExporter,
)
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from tests.support.otlp_receiver import OtlpReceiver

from budgetwatch import BudgetTelemetry
from budgetwatch._otlp import resolve


def settings(env: dict[str, str], **kwargs: object) -> tuple[str, str]:
    args: dict[str, object] = {"endpoint": None, "headers": None, "timeout_s": None}
    args["protocol"] = None
    args.update(kwargs)
    s = resolve(environ=env, **args)  # type: ignore[arg-type]
    return s.protocol, s.endpoint


PROTO, M_PROTO = "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"
BASE, M_URL = "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"
HTTP_DEFAULT = ("http/protobuf", "http://localhost:4318/v1/metrics")


@pytest.mark.parametrize(
    ("env", "kwargs", "expected"),
    [
        ({}, {}, HTTP_DEFAULT),
        ({PROTO: "grpc"}, {}, ("grpc", "http://localhost:4317")),
        ({M_PROTO: "grpc"}, {}, ("grpc", "http://localhost:4317")),
        # The metrics-specific variable wins over the generic one.
        ({PROTO: "grpc", M_PROTO: "http/protobuf"}, {}, HTTP_DEFAULT),
        # Base endpoint: HTTP appends the signal path, gRPC uses it as is.
        ({BASE: "http://c:4318/"}, {}, ("http/protobuf", "http://c:4318/v1/metrics")),
        ({BASE: "http://c/otlp"}, {}, ("http/protobuf", "http://c/otlp/v1/metrics")),
        ({BASE: "http://c:4317", PROTO: "grpc"}, {}, ("grpc", "http://c:4317")),
        # The metrics-specific endpoint is used as is, and wins.
        (
            {M_URL: "http://m:1/custom", BASE: "http://c"},
            {},
            ("http/protobuf", "http://m:1/custom"),
        ),
        # The argument wins over everything; a bare base URL gets the path, a full one is kept.
        (
            {M_URL: "http://m"},
            {"endpoint": "http://a:1"},
            ("http/protobuf", "http://a:1/v1/metrics"),
        ),
        ({}, {"endpoint": "http://a:1/x/v1/metrics"}, ("http/protobuf", "http://a:1/x/v1/metrics")),
        ({PROTO: "grpc"}, {"protocol": "http/protobuf"}, HTTP_DEFAULT),
        # http/json has no Python exporter: warned about, http/protobuf used.
        ({PROTO: "http/json"}, {}, HTTP_DEFAULT),
    ],
)
def test_protocol_and_endpoint_resolution(
    env: dict[str, str], kwargs: dict[str, object], expected: tuple[str, str]
) -> None:
    assert settings(env, **kwargs) == expected


def test_bad_settings_are_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="protocol"):
        resolve(endpoint=None, headers=None, timeout_s=None, protocol="carrier-pigeon")
    with pytest.raises(ValueError, match="timeout_s"):
        resolve(endpoint=None, headers=None, timeout_s=0, protocol=None)
    for kwargs in (
        {"namespace": "1abc"},
        {"namespace": "a-b"},
        {"currency": "U S D"},
        {"export_interval_s": 0},
        {"max_agents": 0},
        {"max_series": -1},
    ):
        with pytest.raises(ValueError):
            BudgetTelemetry("svc", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="service_name"):
        BudgetTelemetry("  ")


def test_grpc_selected_from_environment_builds_the_grpc_exporter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    telemetry = BudgetTelemetry("svc", endpoint="http://127.0.0.1:1", export_interval_s=60)
    inner = telemetry._pipeline.export.exporter._inner  # type: ignore[union-attr]
    assert telemetry.protocol == "grpc"
    assert isinstance(inner, GrpcExporter)
    telemetry._pipeline.shutdown(timeout_s=1)  # type: ignore[union-attr]  # nothing to flush

    monkeypatch.delenv("OTEL_EXPORTER_OTLP_PROTOCOL")
    telemetry = BudgetTelemetry("svc", endpoint="http://127.0.0.1:1", export_interval_s=60)
    assert isinstance(telemetry._pipeline.export.exporter._inner, HttpExporter)  # type: ignore[union-attr]
    telemetry._pipeline.shutdown(timeout_s=1)  # type: ignore[union-attr]


class _GrpcReceiver(metrics_service_pb2_grpc.MetricsServiceServicer):  # type: ignore[misc]
    def __init__(self) -> None:
        self.requests: list[metrics_service_pb2.ExportMetricsServiceRequest] = []
        self.metadata: list[dict[str, str]] = []
        self.arrived = threading.Event()

    def Export(self, request: object, context: grpc.ServicerContext) -> object:
        self.requests.append(request)  # type: ignore[arg-type]
        self.metadata.append(dict(context.invocation_metadata()))  # type: ignore[arg-type]
        self.arrived.set()
        return metrics_service_pb2.ExportMetricsServiceResponse()


def test_real_grpc_receiver_gets_the_data(monkeypatch: pytest.MonkeyPatch) -> None:
    servicer = _GrpcReceiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=team-a")
        telemetry = BudgetTelemetry("grpc-app", export_interval_s=60)
        telemetry.record_cost("cto", 0.75, provider="p", model="m")
        assert telemetry.force_flush(10)
        telemetry.shutdown()
    finally:
        server.stop(grace=None)
    values = {
        (m.name, dp.as_double)
        for r in servicer.requests
        for rm in r.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        for dp in m.sum.data_points
        if m.name == "synthorg.cost"
    }
    assert values == {("synthorg.cost", 0.0), ("synthorg.cost", 0.75)}
    assert servicer.metadata[0]["x-tenant"] == "team-a"


def test_interpreter_exit_flushes_without_an_explicit_shutdown() -> None:
    script = textwrap.dedent(
        """
        import sys
        from budgetwatch import BudgetTelemetry
        telemetry = BudgetTelemetry("exiting", endpoint=sys.argv[1], export_interval_s=60)
        telemetry.record_cost("cto", 1.25, provider="p", model="m")
        # no shutdown(): atexit must flush the 0 and the total
        """
    )
    with OtlpReceiver() as receiver:
        done = subprocess.run(
            [sys.executable, "-c", script, receiver.base_url],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 0, done.stderr
    attrs = {"gen_ai.agent.id": "cto", "gen_ai.provider.name": "p", "gen_ai.request.model": "m"}
    (values,) = receiver.series("synthorg.cost").values()
    assert values[0] == 0
    assert values[-1] == 1.25
    assert receiver.value("synthorg.cost", attrs) == 1.25
