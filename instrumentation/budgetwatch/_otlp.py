"""Where and how to push OTLP: protocol and endpoint resolution, and the SDK exporter.

Follows the OpenTelemetry exporter specification for the standard variables:
- protocol: the argument, else OTEL_EXPORTER_OTLP_METRICS_PROTOCOL, else
  OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf; `grpc` selects OTLP/gRPC.
- endpoint: the argument, else OTEL_EXPORTER_OTLP_METRICS_ENDPOINT (used as is), else
  OTEL_EXPORTER_OTLP_ENDPOINT (a base URL: HTTP appends /v1/metrics), else
  http://localhost:4318 (HTTP) or http://localhost:4317 (gRPC).
- headers and timeout: the arguments, else the SDK exporter reads
  OTEL_EXPORTER_OTLP_METRICS_HEADERS/_TIMEOUT, then OTEL_EXPORTER_OTLP_HEADERS/_TIMEOUT.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from opentelemetry.sdk.metrics.export import AggregationTemporality, MetricExporter

logger = logging.getLogger("budgetwatch")

Protocol = Literal["http/protobuf", "grpc"]
PROTOCOLS: tuple[Protocol, ...] = ("http/protobuf", "grpc")
HTTP_DEFAULT = "http://localhost:4318"
GRPC_DEFAULT = "http://localhost:4317"
METRICS_PATH = "/v1/metrics"


@dataclass(frozen=True)
class ExportSettings:
    protocol: Protocol
    endpoint: str
    headers: dict[str, str] | None  # None: the SDK exporter reads the OTEL_* variables
    timeout_s: float | None  # None: likewise


def resolve(
    *,
    endpoint: str | None,
    headers: Mapping[str, str] | None,
    timeout_s: float | None,
    protocol: str | None,
    environ: Mapping[str, str] = os.environ,
) -> ExportSettings:
    """Settings from the arguments, falling back to the standard environment variables."""
    chosen = _protocol(protocol, environ)
    http = chosen == "http/protobuf"
    if endpoint:
        # A bare base URL (as users usually write it) gets the signal path; a URL with a
        # path is taken as the full metrics endpoint.
        url = _with_metrics_path(endpoint) if http and _has_no_path(endpoint) else endpoint
    elif specific := environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "").strip():
        url = specific
    elif base := environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip():
        url = _with_metrics_path(base) if http else base
    else:
        url = _with_metrics_path(HTTP_DEFAULT) if http else GRPC_DEFAULT
    if timeout_s is not None and not timeout_s > 0:
        raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
    return ExportSettings(
        protocol=chosen,
        endpoint=url,
        headers=dict(headers) if headers is not None else None,
        timeout_s=timeout_s,
    )


def _protocol(argument: str | None, environ: Mapping[str, str]) -> Protocol:
    if argument is not None:
        if argument not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {argument!r}")
        return "grpc" if argument == "grpc" else "http/protobuf"
    for variable in ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        value = environ.get(variable, "").strip().lower()
        if not value:
            continue
        if value == "grpc":
            return "grpc"
        if value != "http/protobuf":
            # http/json has no Python exporter; a typo must not stop the application.
            logger.warning("%s=%r is not supported; using http/protobuf", variable, value)
        return "http/protobuf"
    return "http/protobuf"


def _has_no_path(url: str) -> bool:
    return urlsplit(url).path in ("", "/")


def _with_metrics_path(base: str) -> str:
    return base.rstrip("/") + METRICS_PATH


def make_exporter(
    settings: ExportSettings, temporality: dict[type, AggregationTemporality]
) -> MetricExporter:
    """The SDK's OTLP exporter for these settings (gRPC imported only when used)."""
    if settings.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
            OTLPMetricExporter as GrpcExporter,
        )

        scheme = urlsplit(settings.endpoint).scheme
        return GrpcExporter(
            endpoint=settings.endpoint,
            insecure=(scheme == "http") if scheme else None,
            headers=settings.headers,
            timeout=settings.timeout_s,
            preferred_temporality=temporality,
        )
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
        OTLPMetricExporter as HttpExporter,
    )

    return HttpExporter(
        endpoint=settings.endpoint,
        headers=settings.headers,
        timeout=settings.timeout_s,
        preferred_temporality=temporality,
    )
