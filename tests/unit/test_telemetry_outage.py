"""The collector down for a while, then back: nothing recorded in between is lost."""

from __future__ import annotations

import time

from tests.support.otlp_receiver import OtlpReceiver

from budgetwatch import BudgetTelemetry


def attrs(agent: str) -> dict[str, str]:
    return {"gen_ai.agent.id": agent, "gen_ai.provider.name": "p", "gen_ai.request.model": "m"}


def test_collector_down_then_back_nothing_lost_and_new_series_still_start_at_zero() -> None:
    with OtlpReceiver() as receiver:
        telemetry = BudgetTelemetry(
            "svc", endpoint=receiver.base_url, export_interval_s=0.2, timeout_s=0.5
        )
        try:
            telemetry.record_cost("cto", 1.0, provider="p", model="m")
            assert telemetry.force_flush(5)

            receiver.status = 503  # the collector goes away
            refused_before = receiver.refused
            deadline = time.monotonic() + 10
            sent = 0
            while receiver.refused < refused_before + 3 and time.monotonic() < deadline:
                telemetry.record_cost("cto", 0.25, provider="p", model="m")
                telemetry.record_cost("newcomer", 0.5, provider="p", model="m")  # born offline
                telemetry.record_task("newcomer", "completed")
                sent += 1
                time.sleep(0.01)
            assert receiver.refused >= refused_before + 3, "exports were not refused"
            accepted_while_down = len(receiver.requests)

            receiver.status = 200  # back: the periodic export alone must catch up
            receiver.wait_for(
                lambda r: (
                    r.value("synthorg.cost", attrs("newcomer")) == 0.5 * sent
                    and r.value("synthorg.cost", attrs("cto")) == 1.0 + 0.25 * sent
                ),
                timeout=10,
                what="totals after the outage",
            )
        finally:
            telemetry.shutdown()

    assert sent > 0
    assert accepted_while_down >= 1  # the data before the outage did arrive
    newcomer = receiver.series("synthorg.cost")[
        (telemetry.instance_id, frozenset(attrs("newcomer").items()))
    ]
    # Announced as 0 once the collector was back (the failed exports did not count).
    assert newcomer[0] == 0
    assert newcomer[-1] == 0.5 * sent
    assert newcomer == sorted(newcomer)
    task = {"gen_ai.agent.id": "newcomer", "synthorg.task.status": "completed"}
    assert receiver.value("synthorg.tasks", task) == sent
