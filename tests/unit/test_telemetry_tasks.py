"""Cost per task: record_cost/record_task with task_id, the open-task table and its bounds,
the `<ns>.task.cost` exponential histogram and `task_cost_view`."""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ExponentialHistogramDataPoint,
    HistogramDataPoint,
    InMemoryMetricReader,
)
from tests.support.otlp_receiver import OtlpReceiver, sdk_values

from budgetwatch import BudgetTelemetry, task_cost_view
from budgetwatch._tasks import MAX_BUCKETS, OpenTasks, ZeroFirst
from budgetwatch.adapters import record_cost_record, record_task, record_task_change

AGENT, STATUS = "gen_ai.agent.id", "synthorg.task.status"
TASK_COST = "synthorg.task.cost"


@dataclass
class Setup:
    telemetry: BudgetTelemetry
    reader: InMemoryMetricReader

    def tasks(self) -> dict[tuple[str, str], ExponentialHistogramDataPoint]:
        """(agent, status) -> the histogram point of one collection."""
        out: dict[tuple[str, str], ExponentialHistogramDataPoint] = {}
        data = self.reader.get_metrics_data()
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name != TASK_COST:
                        continue
                    assert metric.unit == "{USD}"
                    for dp in metric.data.data_points:
                        assert isinstance(dp, ExponentialHistogramDataPoint)
                        attrs = dict(dp.attributes or {})
                        assert set(attrs) == {AGENT, STATUS}
                        out[(attrs[AGENT], attrs[STATUS])] = dp
        return out

    def totals(self) -> dict[tuple[str, str], tuple[int, float]]:
        return {key: (dp.count, dp.sum) for key, dp in self.tasks().items()}

    def dropped(self) -> dict[str, float]:
        sdk_values(self.reader)
        return {
            dict(attrs)["reason"]: value
            for (name, attrs), value in sdk_values(self.reader).items()
            if name == "synthorg.telemetry.dropped"
        }


def make_setup(**kw: Any) -> tuple[Setup, MeterProvider]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], views=[task_cost_view("synthorg")])
    return Setup(BudgetTelemetry("svc", meter_provider=provider, **kw), reader), provider


@pytest.fixture
def setup() -> Iterator[Setup]:
    s, provider = make_setup()
    yield s
    provider.shutdown()


def test_a_task_s_calls_are_summed_and_recorded_once_at_its_terminal_status(setup: Setup) -> None:
    t = setup.telemetry
    t.record_cost("cto", 0.5, provider="p", model="m", task_id="t1")
    t.record_cost("cto", 0.25, provider="p", model="m", task_id="t2")  # interleaved
    t.record_cost("cto", 0.125, provider="p", model="other", task_id="t1")
    t.record_cost("cto", 1.0, provider="p", model="m")  # no task
    assert setup.totals() == {}  # nothing until a task finishes
    t.record_task("cto", "completed", task_id="t1")
    t.record_task("cto", "FAILED ", task_id="t2")  # case and blanks as any status
    assert setup.totals() == {("cto", "completed"): (1, 0.625), ("cto", "failed"): (1, 0.25)}
    # ... and the calls themselves as always
    cost = {k: v for k, v in sdk_values(setup.reader).items() if k[0] == "synthorg.cost"}
    assert sum(cost.values()) == 1.875


def test_the_agent_and_status_of_the_terminal_record_label_the_task(setup: Setup) -> None:
    t = setup.telemetry
    t.record_cost("eng-1", 2.0, task_id="t1")  # the calls' agent does not matter
    t.record_task("lead", "in_progress", task_id="t1")
    t.record_task("_cto", "Cancelled", task_id="t1")  # the same cleaning as other instruments
    t.record_task(None, "rejected", task_id="t2")
    t.record_task("cto", "interrupted", task_id="t3")
    assert setup.totals() == {
        ("app_cto", "cancelled"): (1, 2.0),
        ("_unassigned", "rejected"): (1, 0.0),
        ("cto", "interrupted"): (1, 0.0),
    }


@pytest.mark.parametrize("status", ["completed", "failed", "cancelled", "rejected", "interrupted"])
def test_every_terminal_status_closes_the_task(setup: Setup, status: str) -> None:
    setup.telemetry.record_cost("a", 0.5, task_id="t")
    setup.telemetry.record_task("a", status.upper(), task_id="t")
    assert setup.totals() == {("a", status): (1, 0.5)}
    assert len(setup.telemetry._tasks) == 0


def test_non_terminal_statuses_open_a_task_at_zero_and_never_record(setup: Setup) -> None:
    t = setup.telemetry
    t.record_task("a", "created", task_id="t1")
    t.record_task("a", "in_progress", task_id="t1")  # already open: still 0
    t.record_task("a", "blocked", task_id="t2")
    assert setup.totals() == {}
    assert len(t._tasks) == 2
    t.record_task("a", "completed", task_id="t1")
    assert setup.totals() == {("a", "completed"): (1, 0.0)}


def test_a_task_never_seen_cost_nothing(setup: Setup) -> None:
    setup.telemetry.record_task("a", "completed", task_id="never-opened")
    assert setup.totals() == {("a", "completed"): (1, 0.0)}
    assert setup.dropped() == {}


def test_a_task_closed_twice_or_charged_after_closing_is_recorded_once(setup: Setup) -> None:
    t = setup.telemetry
    t.record_cost("a", 1.0, task_id="t")
    t.record_task("a", "completed", task_id="t")
    t.record_task("a", "completed", task_id="t")  # reported twice
    t.record_task("a", "failed", task_id="t")  # or contradicted
    t.record_cost("a", 0.5, task_id="t")  # a late cost record
    assert setup.totals() == {("a", "completed"): (1, 1.0)}
    assert setup.dropped() == {"task_already_closed": 3}
    assert len(t._tasks) == 0  # the late cost did not reopen it
    cost = [v for k, v in sdk_values(setup.reader).items() if k[0] == "synthorg.cost"]
    assert cost == [1.5]  # the late cost still counts as spend


def test_a_non_terminal_status_reopens_a_closed_task(setup: Setup) -> None:
    t = setup.telemetry
    t.record_cost("a", 1.0, task_id="t")
    t.record_task("a", "interrupted", task_id="t")
    t.record_task("a", "in_progress", task_id="t")  # resumed: from 0
    t.record_cost("a", 0.25, task_id="t")
    t.record_task("a", "completed", task_id="t")
    assert setup.totals() == {("a", "interrupted"): (1, 1.0), ("a", "completed"): (1, 0.25)}


def test_the_oldest_open_task_is_evicted_and_its_end_is_not_recorded_as_zero(
    caplog: pytest.LogCaptureFixture,
) -> None:
    s, provider = make_setup(max_open_tasks=2)
    t = s.telemetry
    with caplog.at_level(logging.WARNING, logger="budgetwatch"):
        t.record_cost("a", 1.0, task_id="t1")
        t.record_cost("a", 2.0, task_id="t2")
        t.record_cost("a", 4.0, task_id="t1")  # t1 stays the oldest opened
        t.record_task("a", "in_progress", task_id="t3")  # evicts t1
        t.record_cost("a", 8.0, task_id="t4")  # evicts t2
    assert len(t._tasks) == 2
    assert [r.getMessage().count("task_evicted") > 0 for r in caplog.records] == [True]
    t.record_cost("a", 16.0, task_id="t1")  # an evicted task stays out
    t.record_task("a", "in_progress", task_id="t1")
    t.record_task("a", "completed", task_id="t1")
    t.record_task("a", "completed", task_id="t2")
    t.record_cost("a", 0.5, task_id="t3")
    t.record_task("a", "completed", task_id="t3")
    t.record_task("a", "failed", task_id="t4")
    assert s.totals() == {("a", "completed"): (1, 0.5), ("a", "failed"): (1, 8.0)}
    assert s.dropped() == {"task_evicted": 2, "task_evicted_closed": 2}
    provider.shutdown()


def test_the_memory_of_gone_tasks_is_bounded_too() -> None:
    table = OpenTasks(max_open=3)
    for i in range(10):
        assert table.close(f"t{i}") == (0.0, ())
    assert len(table._gone) == 3
    assert table.close("t0") == (0.0, ())  # forgotten: a task never seen again
    assert table.close("t9") == (None, ("task_already_closed",))


def test_eviction_is_first_opened_first_out_at_any_size() -> None:
    table = OpenTasks(max_open=1000)
    for i in range(5000):
        table.add(f"t{i}", 1.0)
    assert list(table._open) == [f"t{i}" for i in range(4000, 5000)]


BAD_IDS: list[object] = [True, 1.5, b"t1", ["t1"], {"t": 1}, "", "   ", "x" * 257, object()]


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
def test_a_bad_task_id_is_counted_and_the_event_itself_recorded(setup: Setup, bad: object) -> None:
    t = setup.telemetry
    t.record_cost("a", 0.5, provider="p", model="m", task_id=bad)  # type: ignore[arg-type]
    t.record_task("a", "completed", task_id=bad)  # type: ignore[arg-type]
    t.record_task("a", "in_progress", task_id=bad)  # type: ignore[arg-type]
    values = sdk_values(setup.reader)
    values = sdk_values(setup.reader)
    call = {AGENT: "a", "gen_ai.provider.name": "p", "gen_ai.request.model": "m"}
    assert values[("synthorg.cost", frozenset(call.items()))] == 0.5
    tasks = {dict(k)[STATUS]: v for (n, k), v in values.items() if n == "synthorg.tasks"}
    assert tasks == {"completed": 1, "in_progress": 1}
    assert setup.totals() == {}
    assert setup.dropped() == {"invalid_task_id": 3}


def test_int_and_uuid_task_ids_are_ids(setup: Setup) -> None:
    import uuid

    t = setup.telemetry
    u = uuid.UUID("12345678-1234-5678-1234-567812345678")
    t.record_cost("a", 0.25, provider="p", model="m", task_id=42)  # type: ignore[arg-type]
    t.record_cost("a", 0.5, provider="p", model="m", task_id="42")
    t.record_cost("a", 1.0, provider="p", model="m", task_id=u)  # type: ignore[arg-type]
    t.record_task("a", "completed", task_id=42)  # type: ignore[arg-type]
    t.record_task("a", "completed", task_id=str(u))
    # two tasks: 42 (0.25 + 0.5) and the UUID (1.0)
    assert setup.totals() == {("a", "completed"): (2, 1.75)}
    assert setup.dropped() == {}


def test_longest_and_enum_task_ids_are_fine(setup: Setup) -> None:
    from enum import StrEnum

    class Ids(StrEnum):
        T = "t-enum"

    longest = "x" * 256
    setup.telemetry.record_cost("a", 0.5, task_id=longest)
    setup.telemetry.record_cost("a", 0.25, task_id=Ids.T)
    setup.telemetry.record_task("a", "completed", task_id=longest)
    setup.telemetry.record_task("a", "failed", task_id="t-enum")  # the same id as the Enum
    assert setup.totals() == {("a", "completed"): (1, 0.5), ("a", "failed"): (1, 0.25)}


def test_bad_costs_and_statuses_with_a_task_id(setup: Setup) -> None:
    t = setup.telemetry
    t.record_cost("a", -1.0, task_id="t")  # dropped cost: the task is open, at 0
    t.record_cost("a", "0.5", task_id="t")  # type: ignore[arg-type]
    t.record_cost("a", 0.25, input_tokens=-3, task_id="t")  # bad tokens: the cost counts
    t.record_task("a", "", task_id="t")  # no status: no task change
    t.record_task("a", None, task_id="t")  # type: ignore[arg-type]
    assert len(t._tasks) == 1
    t.record_task("a", "completed", task_id="t")
    assert setup.totals() == {("a", "completed"): (1, 0.25)}


def test_agents_past_the_cap_fold_into_overflow_counted_once_per_event() -> None:
    s, provider = make_setup(max_agents=1)
    s.telemetry.record_task("a", "completed", task_id="t1")
    s.telemetry.record_task("b", "completed", task_id="t2")
    assert s.totals() == {("a", "completed"): (1, 0.0), ("_overflow", "completed"): (1, 0.0)}
    assert s.dropped() == {"agent_overflow": 1}
    provider.shutdown()


def test_an_internal_error_is_counted_never_raised(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(setup.telemetry._tasks.histogram, "record", broken)
    setup.telemetry.record_task("a", "completed", task_id="t")
    assert setup.dropped() == {"internal_error": 1}


def test_max_open_tasks_must_be_a_positive_int() -> None:
    for bad in (0, -1, 1.5, True, "10"):
        with pytest.raises(ValueError, match="max_open_tasks"):
            BudgetTelemetry("svc", meter_provider=MeterProvider(), max_open_tasks=bad)  # type: ignore[arg-type]


def test_without_task_ids_no_histogram_and_no_table(setup: Setup) -> None:
    setup.telemetry.record_cost("a", 0.5)
    setup.telemetry.record_task("a", "completed")
    assert setup.totals() == {}
    assert len(setup.telemetry._tasks) == 0


def test_threads_summing_shared_and_own_tasks_are_exact(setup: Setup) -> None:
    t = setup.telemetry
    threads_n, calls = 8, 2000

    def work(n: int) -> None:
        for i in range(calls):
            t.record_cost(f"a{n}", 0.25, provider="p", model="m", task_id=f"own-{n}")
            t.record_cost(f"a{n}", 0.5, provider="p", model="m", task_id="shared")
            if i % 100 == 99:  # many short tasks opened and closed concurrently
                t.record_task(f"a{n}", "completed", task_id=f"short-{n}-{i}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(threads_n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for n in range(threads_n):
        t.record_task(f"a{n}", "completed", task_id=f"own-{n}")
    t.record_task("lead", "completed", task_id="shared")
    totals = setup.totals()
    for n in range(threads_n):
        assert totals[(f"a{n}", "completed")] == (1 + calls // 100, 0.25 * calls)
    assert totals[("lead", "completed")] == (1, 0.5 * calls * threads_n)


# --- the histogram's buckets ------------------------------------------------------------------


def test_the_view_keeps_about_one_percent_over_four_decades(setup: Setup) -> None:
    t = setup.telemetry
    costs = [0.001 * 10 ** (i / 25) for i in range(101)]  # 0.001 .. 10, 4 decades
    for i, cost in enumerate(costs):
        t.record_cost("wide", cost, task_id=f"w{i}")
        t.record_task("wide", "completed", task_id=f"w{i}")
    for i, cost in enumerate(costs[:51]):  # 0.001 .. 0.1, 2 decades
        t.record_cost("narrow", cost, task_id=f"n{i}")
        t.record_task("narrow", "completed", task_id=f"n{i}")
    points = setup.tasks()
    wide, narrow = points[("wide", "completed")], points[("narrow", "completed")]
    # Scale 6: buckets 2^(1/64) = 1.09 % wide; scale 7 for 2 decades: 0.54 %.
    assert (wide.scale, narrow.scale) == (6, 7)
    assert len(wide.positive.bucket_counts) <= MAX_BUCKETS
    assert (wide.count, narrow.count) == (101, 51)
    assert math.isclose(wide.sum, sum(costs), rel_tol=1e-12)
    assert (wide.min, wide.max) == (costs[0], costs[-1])


def test_powers_of_two_are_upper_bucket_edges(setup: Setup) -> None:
    setup.telemetry.record_cost("a", 2.0, task_id="t")
    setup.telemetry.record_task("a", "completed", task_id="t")
    dp = setup.tasks()[("a", "completed")]
    # Bucket i is (2^(i / 2^scale), 2^((i + 1) / 2^scale)]: 2.0 sits at the top of its bucket.
    assert dp.positive.offset + 1 == 2**dp.scale
    assert dp.positive.bucket_counts == [1]


def test_without_the_view_an_app_provider_gets_useless_explicit_buckets() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    telemetry = BudgetTelemetry("svc", meter_provider=provider)
    telemetry.record_task("a", "completed", task_id="t")
    [dp] = [
        dp
        for rm in reader.get_metrics_data().resource_metrics  # type: ignore[union-attr]
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == TASK_COST
        for dp in m.data.data_points
    ]
    assert isinstance(dp, HistogramDataPoint)
    provider.shutdown()


def test_the_view_matches_only_the_task_cost_of_its_namespace() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], views=[task_cost_view("acme")])
    telemetry = BudgetTelemetry("svc", namespace="acme", meter_provider=provider)
    telemetry.record_cost("a", 0.5, task_id="t")
    telemetry.record_task("a", "completed", task_id="t")
    other = provider.get_meter("app").create_histogram("app.latency")
    other.record(3.0)
    kinds = {
        m.name: type(m.data.data_points[0]).__name__
        for rm in reader.get_metrics_data().resource_metrics  # type: ignore[union-attr]
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name in ("acme.task.cost", "app.latency")
    }
    assert kinds == {
        "acme.task.cost": "ExponentialHistogramDataPoint",
        "app.latency": "HistogramDataPoint",
    }
    provider.shutdown()


# --- our own pipeline: exponential buckets, an empty first point, forks -------------------------


def test_owned_pipeline_exports_an_empty_point_first_then_the_tasks() -> None:
    with OtlpReceiver() as receiver:
        telemetry = BudgetTelemetry("svc", endpoint=receiver.base_url, export_interval_s=60)
        telemetry.record_cost("a", 0.75, task_id="t1")
        telemetry.record_task("a", "completed", task_id="t1")
        assert telemetry.force_flush(5)
        telemetry.record_task("a", "completed", task_id="t2")
        assert telemetry.force_flush(5)
        telemetry.shutdown()
        points = receiver.histograms(TASK_COST)
    assert {p.temporality for p in points} == {2}  # cumulative
    assert {p.unit for p in points} == {"{USD}"}
    series = [(p.count, p.sum) for p in points if p.attributes == {AGENT: "a", STATUS: "completed"}]
    # Empty first (force_flush then exports the task at once), never again after.
    assert series[:2] == [(0, 0.0), (1, 0.75)]
    assert series[-1] == (2, 0.75)
    assert series.count((0, 0.0)) == 1
    assert points[0].time_unix_nano < points[1].time_unix_nano


def test_a_series_born_while_the_collector_refuses_still_arrives_empty_first() -> None:
    with OtlpReceiver() as receiver:
        receiver.status = 503
        telemetry = BudgetTelemetry(
            "svc", endpoint=receiver.base_url, export_interval_s=60, timeout_s=0.5
        )
        telemetry.record_cost("a", 0.75, task_id="t1")
        telemetry.record_task("a", "completed", task_id="t1")
        assert not telemetry.force_flush(2)
        receiver.status = 200
        assert telemetry.force_flush(5)
        telemetry.shutdown()
        series = [(p.count, p.sum) for p in receiver.histograms(TASK_COST)]
    assert series[:2] == [(0, 0.0), (1, 0.75)]


def test_the_empty_point_is_repeated_until_an_export_carrying_it_succeeds() -> None:
    s, provider = make_setup()
    s.telemetry.record_task("a", "completed", task_id="t")
    zero_first = ZeroFirst(TASK_COST)
    data = s.reader.get_metrics_data()
    assert data is not None

    def counts(rewritten: Any) -> list[int]:
        return [
            dp.count
            for rm in rewritten.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == TASK_COST
            for dp in m.data.data_points
        ]

    first, _failed_export = zero_first.rewrite(data)  # the export failed: never confirmed
    assert counts(first) == [0]
    again, confirm = zero_first.rewrite(data)
    assert counts(again) == [0]
    assert zero_first.confirmed == 0
    confirm()
    assert zero_first.confirmed == 1
    after, _ = zero_first.rewrite(data)
    assert counts(after) == [1]
    provider.shutdown()


FORK_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from budgetwatch import BudgetTelemetry

    telemetry = BudgetTelemetry("forked-app", endpoint=sys.argv[1], export_interval_s=60)
    telemetry.record_cost("cto", 1.0, task_id="t1")
    telemetry.record_cost("cto", 2.0, task_id="t2")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        open_in_child = len(telemetry._tasks)
        telemetry.record_cost("cto", 0.5, task_id="t2")
        telemetry.record_task("cto", "completed", task_id="t1")  # unknown here: 0
        telemetry.record_task("cto", "completed", task_id="t2")  # only the child's 0.5
        ok = telemetry.force_flush(5)
        os.write(write_end, json.dumps(
            {"child": telemetry.instance_id, "ok": ok, "open": open_in_child}).encode())
        os._exit(0)
    os.close(write_end)
    child = json.loads(os.read(read_end, 4096))
    os.waitpid(pid, 0)
    telemetry.record_task("cto", "completed", task_id="t1")
    telemetry.record_task("cto", "failed", task_id="t2")
    telemetry.shutdown()
    print(json.dumps({"parent": telemetry.instance_id, **child}))
    """
)


def test_a_forked_child_starts_with_no_open_task_and_the_parent_keeps_its_own() -> None:
    with OtlpReceiver() as receiver:
        done = subprocess.run(
            [sys.executable, "-c", FORK_SCRIPT, receiver.base_url],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        points = receiver.histograms(TASK_COST)
    ids = json.loads(done.stdout.strip().splitlines()[-1])
    assert ids["ok"] is True and ids["open"] == 0
    last: dict[tuple[str, str], tuple[int, float]] = {}
    for p in points:
        who = "child" if p.instance == ids["child"] else "parent"
        last[(who, p.attributes[STATUS])] = (p.count, p.sum)
    assert last == {
        ("child", "completed"): (2, 0.5),
        ("parent", "completed"): (1, 1.0),
        ("parent", "failed"): (1, 2.0),
    }


# --- adapters and LiteLLM ----------------------------------------------------------------------


@dataclass(frozen=True)
class CostRecord:  # SynthOrg's CostRecord shape
    agent_id: str
    task_id: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cost: float


@dataclass
class Task:  # SynthOrg's Task shape (the fields the adapter reads)
    id: str
    assigned_to: str | None
    status: str


def test_adapters_pass_the_task_ids(setup: Setup) -> None:
    t = setup.telemetry
    record_cost_record(t, CostRecord("cto", "task-1", "anthropic", "sonnet", 10, 2, 0.5))
    record_cost_record(t, {"agent_id": "cto", "task_id": "task-1", "cost": 0.25})
    record_cost_record(t, {"agent_id": "eng", "task_id": "task-2", "cost": 1.0})
    record_task(t, Task("task-1", "cto", "completed"))
    record_task_change(t, "eng", "failed", "task-2")
    record_task_change(t, "eng", "completed")  # no id: counted, no task cost
    assert setup.totals() == {("cto", "completed"): (1, 0.75), ("eng", "failed"): (1, 1.0)}


def test_litellm_reads_the_task_id_from_the_call_metadata() -> None:
    pytest.importorskip("litellm")
    from budgetwatch.integrations.litellm import read_call

    kwargs = {
        "litellm_params": {"metadata": {"agent_id": "cto", "task_id": "task-9", "job": "x"}},
        "response_cost": 0.5,
        "model": "gpt-4o",
    }
    assert read_call(kwargs, None).task_id == "task-9"
    assert read_call(kwargs, None, task_key="job").task_id == "x"
    assert read_call({"response_cost": 0.5}, None).task_id is None


def test_litellm_callback_adds_the_call_cost_to_its_task(setup: Setup) -> None:
    pytest.importorskip("litellm")
    from budgetwatch.integrations.litellm import BudgetwatchLogger

    logger = BudgetwatchLogger(setup.telemetry)
    for call_id, cost in (("c1", 0.5), ("c2", 0.25)):
        logger.log_success_event(
            {
                "litellm_call_id": call_id,
                "litellm_params": {"metadata": {"agent_id": "cto", "task_id": "task-7"}},
                "response_cost": cost,
                "model": "gpt-4o",
                "custom_llm_provider": "openai",
            },
            None,
            None,
            None,
        )
    setup.telemetry.record_task("cto", "completed", task_id="task-7")
    assert setup.totals() == {("cto", "completed"): (1, 0.75)}
    with pytest.raises(ValueError, match="task_key"):
        BudgetwatchLogger(setup.telemetry, task_key="")
