"""Process identity across fork: the child reports under its own instance id, from zero.

The forking runs in a separate Python process (not in pytest's, which has threads of its
own); it reports instance ids on stdout, the data goes to the real receiver here.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.support.otlp_receiver import OtlpReceiver

from budgetwatch import BudgetTelemetry

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from budgetwatch import BudgetTelemetry

    telemetry = BudgetTelemetry("forked-app", endpoint=sys.argv[1], export_interval_s=0.2)
    telemetry.record_cost("cto", 1.0, provider="p", model="m")
    telemetry.record_task("cto", "completed")
    assert telemetry.force_flush(5)
    parent_id = telemetry.instance_id

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child, as a pre-fork server's worker
        os.close(read_end)
        telemetry.record_cost("cto", 0.25, provider="p", model="m")
        telemetry.record_cost("worker", 0.5, provider="p", model="m")
        ok = telemetry.force_flush(5)
        os.write(write_end, json.dumps({"child": telemetry.instance_id, "ok": ok}).encode())
        os._exit(0)  # like multiprocessing: no atexit, hence the explicit flush
    os.close(write_end)
    child = json.loads(os.read(read_end, 4096))
    os.waitpid(pid, 0)
    telemetry.record_cost("cto", 2.0, provider="p", model="m")  # the parent goes on
    telemetry.shutdown()
    print(json.dumps({"parent": parent_id, "after_fork": telemetry.instance_id, **child}))
    """
)


def test_fork_child_has_new_instance_id_starts_at_zero_parent_unaffected() -> None:
    with OtlpReceiver() as receiver:
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, receiver.base_url],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
    ids = json.loads(done.stdout.strip().splitlines()[-1])
    parent, child = ids["parent"], ids["child"]
    assert ids["ok"] is True
    assert parent != child
    assert ids["after_fork"] == parent  # the parent keeps its identity

    cto = {"gen_ai.agent.id": "cto", "gen_ai.provider.name": "p", "gen_ai.request.model": "m"}
    worker = {**cto, "gen_ai.agent.id": "worker"}
    cost = receiver.series("synthorg.cost")
    # The child: only its own events, each series starting at 0.
    assert cost[(child, frozenset(cto.items()))][0] == 0
    assert cost[(child, frozenset(cto.items()))][-1] == 0.25
    assert cost[(child, frozenset(worker.items()))][0] == 0
    assert cost[(child, frozenset(worker.items()))][-1] == 0.5
    child_tasks = {k for k in receiver.series("synthorg.tasks") if k[0] == child}
    assert child_tasks == set(), "the child re-reported the parent's task count"
    # The parent: its own totals, never the child's, still exported after the fork.
    assert cost[(parent, frozenset(cto.items()))][-1] == 3.0
    assert (parent, frozenset(worker.items())) not in cost
    assert {p.instance for p in receiver.points()} == {parent, child}
    assert {p.resource["service.name"] for p in receiver.points()} == {"forked-app"}


def test_instance_ids_are_unique_per_telemetry_object() -> None:
    with OtlpReceiver() as receiver:
        first = BudgetTelemetry("svc", endpoint=receiver.base_url, export_interval_s=60)
        second = BudgetTelemetry("svc", endpoint=receiver.base_url, export_interval_s=60)
        for telemetry in (first, second):
            telemetry.record_task("a", "created")
            telemetry.shutdown()
    assert first.instance_id != second.instance_id
    assert len(first.instance_id) == 36  # a UUID
    assert {p.instance for p in receiver.points()} == {first.instance_id, second.instance_id}
