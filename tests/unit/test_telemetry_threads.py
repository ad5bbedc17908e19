"""Many threads recording at once lose nothing: exported totals equal the sums exactly."""

from __future__ import annotations

import threading

from tests.support.otlp_receiver import OtlpReceiver

from budgetwatch import BudgetTelemetry

THREADS = 8
EVENTS = 50_000


def test_8_threads_x_50000_events_exact_totals() -> None:
    with OtlpReceiver() as receiver:
        # A short interval: exports (and their callbacks) run while the threads record.
        telemetry = BudgetTelemetry("svc", endpoint=receiver.base_url, export_interval_s=0.2)
        barrier = threading.Barrier(THREADS)

        def work(n: int) -> None:
            barrier.wait()
            agent = f"agent-{n % 4}"  # two threads per agent: shared rows are contended
            for i in range(EVENTS):
                # Binary fractions, so float sums are exact in any order.
                telemetry.record_cost(
                    agent, 0.125 * (1 + i % 4), provider="p", model="m",
                    input_tokens=i % 7, output_tokens=1,
                )  # fmt: skip
                if i % 10 == 0:
                    telemetry.record_task(agent, "completed")

        threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert telemetry.force_flush(10)
        telemetry.shutdown()

    per_thread_cost = 0.125 * sum(1 + i % 4 for i in range(EVENTS))
    per_thread_input = sum(i % 7 for i in range(EVENTS))
    for n in range(4):
        attrs = {"gen_ai.agent.id": f"agent-{n}", "gen_ai.provider.name": "p"}
        attrs["gen_ai.request.model"] = "m"
        assert receiver.value("synthorg.cost", attrs) == 2 * per_thread_cost
        assert receiver.value("synthorg.tokens", {**attrs, "gen_ai.token.type": "input"}) == (
            2 * per_thread_input
        )
        assert receiver.value("synthorg.tokens", {**attrs, "gen_ai.token.type": "output"}) == (
            2 * EVENTS
        )
        assert receiver.value("synthorg.calls", {**attrs, "synthorg.call.outcome": "priced"}) == (
            2 * EVENTS
        )
        task = {"gen_ai.agent.id": f"agent-{n}", "synthorg.task.status": "completed"}
        assert receiver.value("synthorg.tasks", task) == 2 * EVENTS // 10
    total = sum(receiver.latest("synthorg.cost").values())
    assert total == THREADS * per_thread_cost
    # Monotonic through all the periodic exports made while recording.
    for values in receiver.series("synthorg.cost").values():
        assert values == sorted(values)
