"""One real GenAI source process for tests/e2e/test_genai_sources.py.

    python genai_driver.py '{"source": "litellm", "calls": [...], ...}'

Sources (each pushes OTLP/HTTP to $OTEL_EXPORTER_OTLP_ENDPOINT with its own code, as a user
would run it): `litellm` (LiteLLM's own OTel callback, `mock_response`, no network), `openlit`
(OpenLIT instrumenting the OpenAI client against a local fake server), `tokens` (the OTel SDK
recording `gen_ai.client.token.usage` only, as the GenAI conventions do), `spans` (spans
carrying the proposed cost attributes). Prints one JSON line: what the source itself says it
did (LiteLLM's response_cost per call, the tokens of each call), for the test's ledger.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def flush_global_provider() -> None:
    from opentelemetry import metrics, trace

    for provider in (metrics.get_meter_provider(), trace.get_tracer_provider()):
        flush = getattr(provider, "force_flush", None)
        if flush is not None:
            flush()


def run_litellm(spec: dict[str, Any]) -> list[dict[str, Any]]:
    os.environ["LITELLM_OTEL_INTEGRATION_ENABLE_METRICS"] = "true"
    os.environ.setdefault("OTEL_EXPORTER", "otlp_http")
    import litellm

    telemetry = None
    callbacks: list[Any] = ["otel"]
    if spec.get("also_budgetwatch"):  # the same app also records through our library
        from budgetwatch import BudgetTelemetry
        from budgetwatch.integrations.litellm import BudgetwatchLogger

        telemetry = BudgetTelemetry(
            service_name=os.environ["OTEL_SERVICE_NAME"],
            endpoint=os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"],
            export_interval_s=0.5,
        )
        callbacks.append(BudgetwatchLogger(telemetry))
    litellm.callbacks = callbacks
    done = []
    for call in spec["calls"]:
        kwargs: dict[str, Any] = {}
        if call.get("metadata") is not None:
            kwargs["metadata"] = call["metadata"]
        response = litellm.completion(
            model=call["model"],
            messages=[{"role": "user", "content": "hi"}],
            mock_response=call.get("response", "ok"),
            **kwargs,
        )
        usage = response.usage
        done.append(
            {
                "cost": response._hidden_params.get("response_cost"),
                "input": usage.prompt_tokens,
                "output": usage.completion_tokens,
            }
        )
    time.sleep(1.5)  # LiteLLM runs its success callbacks in the background
    if telemetry is not None:
        telemetry.shutdown()
    return done


class FakeOpenAI(BaseHTTPRequestHandler):
    """Answers /v1/chat/completions like OpenAI, with fixed usage (10 in, 5 out); without
    the usage details when `details` is off, as many OpenAI-compatible servers answer."""

    details = True

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", 0))
        request = json.loads(self.rfile.read(length) or b"{}")
        body = json.dumps(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": request.get("model", "gpt-4o-mini"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "ok"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
                | (
                    {
                        "prompt_tokens_details": {"cached_tokens": 0},
                        "completion_tokens_details": {"reasoning_tokens": 0},
                    }
                    if self.details
                    else {}
                ),
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


def run_openlit(spec: dict[str, Any]) -> list[dict[str, Any]]:
    FakeOpenAI.details = spec.get("usage_details", True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    import openlit
    from openai import OpenAI

    openlit.init(
        application_name=spec.get("service", "openlit-app"),
        otlp_endpoint=os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"],
        pricing_json=spec["pricing_json"],
        disable_batch=True,
    )
    client = OpenAI(base_url=f"http://127.0.0.1:{server.server_port}/v1", api_key="test")
    done = []
    for call in spec["calls"]:

        def create(model: str = call["model"]) -> None:
            client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "hi"}]
            )

        if call.get("agent"):
            with openlit.agent_context(call["agent"]):
                create()
        else:
            create()
        done.append({"input": 10, "output": 5})
    server.shutdown()
    return done


def run_tokens(spec: dict[str, Any]) -> list[dict[str, Any]]:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource

    reader = PeriodicExportingMetricReader(OTLPMetricExporter(), export_interval_millis=3_600_000)
    provider = MeterProvider(
        metric_readers=[reader],
        resource=Resource.create(
            {"service.name": spec["service"], "service.instance.id": spec["instance"]}
        ),
    )
    histogram = provider.get_meter(spec.get("scope", "agent.sdk")).create_histogram(
        "gen_ai.client.token.usage", unit="{token}"
    )
    done = []
    for step in spec["steps"]:
        if "sleep_until" in step:
            time.sleep(max(0.0, step["sleep_until"] - time.time()))
        for call in step.get("calls", []):
            attrs = {k: v for k, v in call.get("attributes", {}).items() if v is not None}
            histogram.record(call["input"], {**attrs, "gen_ai.token.type": "input"})
            histogram.record(call["output"], {**attrs, "gen_ai.token.type": "output"})
            done.append(call)
        provider.force_flush()
        done.append({"flushed_at": time.time()})
    provider.shutdown()
    return done


def run_spans(spec: dict[str, Any]) -> list[dict[str, Any]]:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": spec["service"], "service.instance.id": spec["instance"]}
        )
    )
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter()))
    tracer = provider.get_tracer("agent.spans")
    for call in spec["calls"]:
        with tracer.start_as_current_span("chat") as span:
            for key, value in call.items():
                span.set_attribute(key, value)
    provider.shutdown()
    return spec["calls"]


def main() -> None:
    spec = json.loads(sys.argv[1])
    runner = {
        "litellm": run_litellm,
        "openlit": run_openlit,
        "tokens": run_tokens,
        "spans": run_spans,
    }[spec["source"]]
    done = runner(spec)
    flush_global_provider()
    print(json.dumps(done), flush=True)


if __name__ == "__main__":
    main()
