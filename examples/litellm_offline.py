"""Per-agent LLM spend from LiteLLM's own price map, offline: no API key, no network.

    pip install 'budgetwatch[litellm]'
    python examples/litellm_offline.py                 # prints what budgetwatch recorded
    python examples/litellm_offline.py --endpoint http://localhost:4318   # also push OTLP

LiteLLM answers from `mock_response` and prices the calls with the price map bundled in the
package (`LITELLM_LOCAL_MODEL_COST_MAP=True`), so the figures printed are LiteLLM's own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

# Before LiteLLM is imported: use its bundled price map instead of fetching one.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    InMemoryMetricReader,
    MetricReader,
    NumberDataPoint,
    PeriodicExportingMetricReader,
)

import budgetwatch
from budgetwatch import BudgetTelemetry
from budgetwatch.integrations.litellm import BudgetwatchLogger

MESSAGES = [{"role": "user", "content": "Summarise the quarterly plan."}]


def make_telemetry(endpoint: str | None) -> tuple[BudgetTelemetry, InMemoryMetricReader]:
    # An in-memory reader lets the example print what it recorded without a collector.
    memory = InMemoryMetricReader()
    readers: list[MetricReader] = [memory]
    if endpoint:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        readers.append(
            PeriodicExportingMetricReader(
                OTLPMetricExporter(endpoint=endpoint.rstrip("/") + "/v1/metrics")
            )
        )
    provider = MeterProvider(metric_readers=readers)
    return BudgetTelemetry("litellm-example", meter_provider=provider), memory


async def async_work() -> None:
    # The agent set around the work follows it across await and into tasks.
    with budgetwatch.agent("researcher"):
        await litellm.acompletion(model="gpt-4o", messages=MESSAGES, mock_response="Plan: ...")
        stream = await litellm.acompletion(
            model="gpt-4o-mini", messages=MESSAGES, mock_response="A streamed plan", stream=True
        )
        async for _chunk in stream:
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", help="OTLP/HTTP base URL of a collector (optional)")
    args = parser.parse_args()

    litellm.suppress_debug_info = True  # keep the output to what budgetwatch recorded
    telemetry, memory = make_telemetry(args.endpoint)
    litellm.callbacks = [BudgetwatchLogger(telemetry)]  # the one line an app adds

    # 1. The agent named in the call's metadata.
    litellm.completion(
        model="anthropic/claude-sonnet-4-5",
        messages=MESSAGES,
        mock_response="Here is the plan.",
        metadata={"agent_id": "cto"},
    )
    # 2. The agent set around the work (works in sync code too).
    with budgetwatch.agent("ceo"):
        litellm.completion(model="gpt-4o-mini", messages=MESSAGES, mock_response="Approved.")
    # 3. Async and streaming.
    asyncio.run(async_work())
    # 4. A model LiteLLM cannot price: counted as an unpriced call, never as zero spend.
    litellm.completion(
        model="openai/in-house-model",
        messages=MESSAGES,
        mock_response="ok",
        metadata={"agent_id": "cto"},
    )
    # 5. A failed call: counted as failed, no cost.
    try:
        litellm.completion(
            model="gpt-4o",
            messages=MESSAGES,
            mock_response=Exception("provider down"),
            metadata={"agent_id": "cto"},
        )
    except Exception as err:
        print(f"call failed as intended: {type(err).__name__}")

    time.sleep(1.0)  # LiteLLM runs success callbacks in the background
    telemetry.force_flush()
    print_recorded(memory)
    telemetry.shutdown()


def print_recorded(memory: InMemoryMetricReader) -> None:
    data = memory.get_metrics_data()
    if data is None:
        print("nothing recorded")
        return
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                for point in metric.data.data_points:
                    if isinstance(point, NumberDataPoint) and point.value:
                        attributes = point.attributes or {}
                        attrs = ", ".join(k + "=" + str(v) for k, v in sorted(attributes.items()))
                        print(f"{metric.name:<22} {point.value:<12.6g} {attrs}")


if __name__ == "__main__":
    main()
