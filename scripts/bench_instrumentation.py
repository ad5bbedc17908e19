"""Benchmark of the recording hot path and of memory per series (`make bench`). Not a
test: it prints figures.

In one process run, with the same workload (agent, provider, model, cost) for each:
  - budgetwatch      BudgetTelemetry.record_cost(agent, cost, provider=..., model=...) with
                     its own export pipeline (the default), pushing OTLP/HTTP to a local sink
  - budgetwatch-app  the same on an application's MeterProvider (InMemoryMetricReader)
  - otel-sdk         a bare OpenTelemetry SDK Counter.add(cost, {3 attributes}) (attributes
                     dict prepared in advance: the SDK's best case)
  - prom-client      prometheus_client Counter.labels(agent, provider, model).inc(cost)
  - otel-sdk-4       (memory only) bare SDK Counters for the 4 series budgetwatch exports per
                     key: what the SDK itself keeps for them
single-threaded and with 4 threads (ns per call = wall time / calls, loop included), the
median of several rounds (each round times every recorder in turn); then memory per 1,000
distinct keys (tracemalloc, after recording and after one collection: an export for our own
pipeline); then the ratios to the bare SDK.
"""

from __future__ import annotations

import argparse
import gc
import http.server
import statistics
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from budgetwatch import BudgetTelemetry

Event = tuple[str, str, str, float]
Recorder = Callable[[list[Event]], None]
# (record a list of events, collect once, release everything)
Bench = tuple[Recorder, Callable[[], None], Callable[[], None]]


def workload(calls: int, agents: int = 50) -> list[Event]:
    models = [("anthropic", "claude-sonnet-4"), ("openai", "gpt-4o")]
    return [(f"agent-{i % agents}", *models[i % 2], 0.0001 * (1 + i % 7)) for i in range(calls)]


class _Sink(http.server.BaseHTTPRequestHandler):
    """Accepts OTLP/HTTP exports (an empty ExportMetricsServiceResponse is an empty body)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def budgetwatch_recorder() -> Bench:
    """What an application runs by default: our own pipeline, exporting OTLP/HTTP."""
    sink = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    sink.daemon_threads = True
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{sink.server_address[1]}"
    telemetry = BudgetTelemetry(
        "bench", endpoint=endpoint, export_interval_s=3600, max_agents=100_000
    )
    record = telemetry.record_cost

    def run(events: list[Event]) -> None:
        for agent, prov, model, cost in events:
            record(agent, cost, provider=prov, model=model)

    def collect() -> None:
        if not telemetry.force_flush(10):
            raise RuntimeError("export to the local sink failed")

    def close() -> None:
        telemetry.shutdown()
        sink.shutdown()
        sink.server_close()

    return run, collect, close


def budgetwatch_app_recorder() -> Bench:
    """On an application's MeterProvider: the SDK's observable counters read our totals."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    telemetry = BudgetTelemetry("bench", meter_provider=provider, max_agents=100_000)
    record = telemetry.record_cost

    def run(events: list[Event]) -> None:
        for agent, prov, model, cost in events:
            record(agent, cost, provider=prov, model=model)

    return run, reader.collect, provider.shutdown


def otel_recorder() -> Bench:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    counter = provider.get_meter("bench").create_counter("bench.cost", unit="{USD}")
    add = counter.add
    attrs: dict[tuple[str, str, str], dict[str, Any]] = {}

    def run(events: list[Event]) -> None:
        for agent, prov, model, cost in events:
            key = (agent, prov, model)
            a = attrs.get(key)
            if a is None:
                a = attrs[key] = {
                    "gen_ai.agent.id": agent,
                    "gen_ai.provider.name": prov,
                    "gen_ai.request.model": model,
                }
            add(cost, a)

    return run, reader.collect, provider.shutdown


def otel_same_series_recorder() -> Bench:
    """Bare SDK Counters for the series budgetwatch exports per key: cost, tokens
    (input, output), calls (priced). For memory only: what the app-owned path compares to."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    meter = provider.get_meter("bench")
    cost_add = meter.create_counter("bench.cost", unit="{USD}").add
    tokens_add = meter.create_counter("bench.tokens", unit="{token}").add
    calls_add = meter.create_counter("bench.calls", unit="{call}").add
    attrs: dict[tuple[str, str, str], tuple[dict[str, Any], ...]] = {}

    def run(events: list[Event]) -> None:
        for agent, prov, model, cost in events:
            key = (agent, prov, model)
            a = attrs.get(key)
            if a is None:
                base = {
                    "gen_ai.agent.id": agent,
                    "gen_ai.provider.name": prov,
                    "gen_ai.request.model": model,
                }
                a = attrs[key] = (
                    base,
                    {**base, "gen_ai.token.type": "input"},
                    {**base, "gen_ai.token.type": "output"},
                    {**base, "bench.call.outcome": "priced"},
                )
            cost_add(cost, a[0])
            tokens_add(0, a[1])
            tokens_add(0, a[2])
            calls_add(1, a[3])

    return run, reader.collect, provider.shutdown


def prometheus_recorder() -> Bench:
    from prometheus_client import CollectorRegistry, Counter

    registry = CollectorRegistry()
    counter = Counter("bench_cost", "cost", ["agent", "provider", "model"], registry=registry)
    labels = counter.labels

    def run(events: list[Event]) -> None:
        for agent, prov, model, cost in events:
            labels(agent, prov, model).inc(cost)

    return run, lambda: None, lambda: None


RECORDERS: dict[str, Callable[[], Bench]] = {
    "budgetwatch": budgetwatch_recorder,
    "budgetwatch-app": budgetwatch_app_recorder,
    "otel-sdk": otel_recorder,
    "prom-client": prometheus_recorder,
}
# Measured for memory only.
MEMORY_ONLY: dict[str, Callable[[], Bench]] = {"otel-sdk-4": otel_same_series_recorder}


def time_once(make: Callable[[], Bench], events: list[Event], threads: int) -> float:
    run, _collect, close = make()
    run(events[:1000])  # warm the caches: we measure steady state, not first sight of a series
    chunks = [events[i::threads] for i in range(threads)]
    gc.collect()
    gc.disable()
    try:
        if threads == 1:
            start = time.perf_counter()
            run(events)
            elapsed = time.perf_counter() - start
        else:
            barrier = threading.Barrier(threads + 1)

            def worker(chunk: list[Event]) -> None:
                barrier.wait()
                run(chunk)

            workers = [threading.Thread(target=worker, args=(c,)) for c in chunks]
            for w in workers:
                w.start()
            barrier.wait()
            start = time.perf_counter()
            for w in workers:
                w.join()
            elapsed = time.perf_counter() - start
    finally:
        gc.enable()
    close()
    return elapsed / len(events) * 1e9


def memory_per_1000(make: Callable[[], Bench], keys: int) -> tuple[float, float]:
    """Bytes per 1,000 distinct (agent, provider, model): after recording, after a collection."""
    events = [(f"agent-{i}", "anthropic", "claude-sonnet-4", 0.01) for i in range(keys)]
    run, collect, close = make()
    run(events[:1])  # instrument and exporter set-up is not per-series memory
    collect()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    run(events[1:])
    recorded = tracemalloc.get_traced_memory()[0]
    collect()  # the SDK keeps its own per-series state from the first collection on
    gc.collect()
    collected = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    close()
    per = 1000 / (keys - 1)
    return (recorded - before) * per, (collected - before) * per


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000, help="calls per measurement")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    events = workload(args.calls)
    print(f"python {sys.version.split()[0]}, {args.calls} calls per run, median of {args.repeats}")
    header = f"{'recorder':<17}{'1 thread ns/call':>15}{'4 threads ns/call':>19}"
    print(header)
    # Rounds visit every recorder in turn, so that a burst of load on this shared machine
    # slows all of them alike rather than the one being measured at that moment.
    rounds: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.repeats):
        for threads in (1, 4):
            for name, make in RECORDERS.items():
                rounds.setdefault((name, threads), []).append(time_once(make, events, threads))
    results: dict[str, tuple[float, float]] = {}
    for name in RECORDERS:
        single = statistics.median(rounds[(name, 1)])
        multi = statistics.median(rounds[(name, 4)])
        results[name] = (single, multi)
        print(f"{name:<17}{single:>15.0f}{multi:>19.0f}")
    print()
    print("memory, bytes per 1,000 distinct (agent, provider, model) keys, 2,000 keys:")
    print(f"{'recorder':<17}{'recorded':>11}{'+ collected':>14}  series exported per key")
    ours_series = "4 (cost, tokens in/out, calls)"
    per_key = {"budgetwatch": ours_series, "budgetwatch-app": ours_series, "otel-sdk-4": "4"}
    memory: dict[str, float] = {}
    for name, make in {**RECORDERS, **MEMORY_ONLY}.items():
        recorded, collected = memory_per_1000(make, 2001)
        memory[name] = collected
        print(f"{name:<17}{recorded:>11,.0f}{collected:>14,.0f}  {per_key.get(name, '1')}")
    print()
    sdk_time, sdk_memory, sdk_same = (
        results["otel-sdk"][0],
        memory["otel-sdk"],
        memory["otel-sdk-4"],
    )
    print("record_cost time / Counter.add time, single-threaded (target <= 0.1):")
    for name in ("budgetwatch", "budgetwatch-app"):
        print(f"  {name:<17}{results[name][0] / sdk_time:.3f}")
    print("memory per key after collection / the bare SDK's (target <= 1):")
    print(f"  {'budgetwatch':<17}{memory['budgetwatch'] / sdk_memory:.2f}")
    print(
        f"  {'budgetwatch-app':<17}{memory['budgetwatch-app'] / sdk_memory:.2f}  (the SDK's own "
        f"state per series; {memory['budgetwatch-app'] / sdk_same:.2f} of otel-sdk-4)"
    )
    ours = results["budgetwatch"]
    for other in ("otel-sdk", "prom-client"):
        theirs = results[other]
        print(
            f"budgetwatch is {theirs[0] / ours[0]:.1f}x faster than {other} single-threaded, "
            f"{theirs[1] / ours[1]:.1f}x with 4 threads"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
