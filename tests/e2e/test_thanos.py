"""End to end on Thanos (thanos/): the ledger through an HA pair of Prometheus into Receive,
read back through Query, with the rules and alerts evaluated by Thanos Rule.

Two app processes -> our otelcol -> Prometheus replicas A and B (agent mode) -> three Receive
nodes (replication factor 2) -> Query (deduplication) <- Rule -> Alertmanager -> webhook.

The single-server ledger tests (tests/e2e/test_ledger.py) run here unchanged against Query:
every contract series must equal the same hand-computed ledger. The cases below add what only
a distributed deployment can get wrong: copies counted twice, a replica or a Receive node lost
mid-run, alerts from a ruler that reads through a query layer, and how far evaluation lags.
Costs are binary fractions, so every sum is exact.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.e2e import test_ledger as ledger
from tests.integration import test_dashboard_queries as panels
from tests.support.promql_scan import series_used
from tests.support.thanos import App, ThanosStack, thanos_stack

from budgetwatch.dashboards import render_dashboards
from budgetwatch.limits import load_limits

pytestmark = pytest.mark.e2e

LIMITS = Path(__file__).with_name("limits-e2e.yaml")
ALERT_TIMEOUT = 180  # alert `for:` 5 s + Alertmanager group_wait 30 s + evaluation


@pytest.fixture(scope="module")
def pipe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThanosStack]:
    workdir = tmp_path_factory.mktemp("thanos")
    limits = workdir / LIMITS.name
    limits.write_text(LIMITS.read_text())
    with thanos_stack(workdir, limits) as stack:
        yield stack


# The single-server ledger, its fixture and its checks, unchanged, against Thanos Query.
apps = ledger.apps
test_raw_counters_match_each_process_ledger = ledger.test_raw_counters_match_each_process_ledger
test_calls_are_counted_by_outcome = ledger.test_calls_are_counted_by_outcome
test_day_and_period_to_date_match_the_ledger = ledger.test_day_and_period_to_date_match_the_ledger
test_limits_and_percents_match_the_ledger = ledger.test_limits_and_percents_match_the_ledger
test_task_counts_match_the_ledger = ledger.test_task_counts_match_the_ledger


def _is(total: float) -> Callable[[float | None], bool]:
    return lambda v: v is not None and math.isclose(v, total, rel_tol=1e-9)


def _dtd(agent: str) -> str:
    return f'synthorg_agent_cost_day_to_date{{gen_ai_agent_id="{agent}"}}'


def test_every_point_is_stored_four_times_and_counted_once(
    pipe: ThanosStack, apps: list[App]
) -> None:
    """2 Prometheus replicas x 2 Receive copies of each raw series; Query keeps one."""
    raw = pipe.query.raw('synthorg_cost_total{gen_ai_agent_id="cto"}', dedup=False)
    copies: dict[tuple[tuple[str, str], ...], list[tuple[str, str, str]]] = {}
    for s in raw:
        labels = dict(s["metric"])
        copy = (labels.pop("replica"), labels.pop("receive_replica"), s["value"][1])
        copies.setdefault(tuple(sorted(labels.items())), []).append(copy)
    assert {dict(k)["instance"] for k in copies} == {app.instance_id for app in apps}
    for series, stored in copies.items():
        assert len(stored) == 4, (series, stored)
        assert sorted(r for r, _, _ in stored) == ["A", "A", "B", "B"], (series, stored)
        assert len({n for _, n, _ in stored}) >= 2, (series, stored)  # on two Receive nodes
        assert len({v for _, _, v in stored}) == 1, (series, stored)  # the same value
    undeduplicated = pipe.query.raw("sum(synthorg_cost_total)", dedup=False)
    deduplicated = pipe.query.raw("sum(synthorg_cost_total)", dedup=True)
    org = sum(ledger._per_agent_cost().values())
    assert _is(org)(float(deduplicated[0]["value"][1]))
    assert _is(4 * org)(float(undeduplicated[0]["value"][1]))  # what a query without dedup sees
    # The ruler writes each recorded series once: no copies to deduplicate.
    for dedup in (False, True):
        [count] = pipe.query.raw("count(synthorg_agent_cost_day_to_date)", dedup=dedup)
        assert float(count["value"][1]) == len(ledger._per_agent_cost()), (dedup, count)


def _spend_and_watch(
    pipe: ThanosStack, app: App, agent: str, costs: list[float], before: float
) -> list[float]:
    """Record `costs` one by one (0.5 s apart, flushed), reading the day-to-date after each:
    every reading must lie between what was confirmed and what was spent (never doubled)."""
    seen = []
    spent = before
    for cost in costs:
        app.cost(agent, cost)
        app.flush()
        spent += cost
        value = pipe.value(_dtd(agent))
        assert value is not None and value <= spent + 1e-9, (value, spent)
        seen.append(value)
        time.sleep(0.5)
    return seen


def test_a_prometheus_replica_killed_mid_run_changes_no_figure(pipe: ThanosStack) -> None:
    agent, app = "ha-replica", pipe.app()
    app.cost(agent, 0.5)
    app.flush()
    pipe.wait_value(_dtd(agent), _is(0.5), timeout=60)

    pipe.replicas["A"].kill()
    seen = _spend_and_watch(pipe, app, agent, [0.25] * 6, before=0.5)
    assert seen == sorted(seen), seen  # never went back
    pipe.wait_value(_dtd(agent), _is(2.0), timeout=60, what="figure from replica B alone")
    assert {s["metric"]["replica"] for s in pipe.query.raw(_raw(agent), dedup=False)} >= {"B"}

    pipe.replicas["A"].start()
    seen = _spend_and_watch(pipe, app, agent, [0.125] * 2, before=2.0)
    pipe.wait_value(_dtd(agent), _is(2.25), timeout=60, what="figure with A back")
    assert seen == sorted(seen), seen
    # Replica A delivers again: its copies are current, and still counted once.
    pipe.wait_value(
        f'max(synthorg_cost_total{{gen_ai_agent_id="{agent}",replica="A"}})',
        _is(2.25),
        timeout=60,
        what="replica A's copy",
    )
    assert _is(2.25)(pipe.value(f"sum({_raw(agent)})"))
    app.shutdown()


def _raw(agent: str) -> str:
    return f'synthorg_cost_total{{gen_ai_agent_id="{agent}"}}'


def test_a_receive_node_killed_and_restarted_loses_and_doubles_nothing(pipe: ThanosStack) -> None:
    agent, app = "ha-receive", pipe.app()
    app.cost(agent, 0.5)
    app.flush()
    pipe.wait_value(_dtd(agent), _is(0.5), timeout=60)

    node = pipe.receivers[1]
    node.kill()
    seen = _spend_and_watch(pipe, app, agent, [0.25] * 8, before=0.5)  # about 6 s down
    node.start(timeout=120)
    seen += _spend_and_watch(pipe, app, agent, [0.125] * 2, before=2.5)
    assert seen == sorted(seen), seen
    pipe.wait_value(_dtd(agent), _is(2.75), timeout=90, what="day-to-date after the restart")
    pipe.wait_value(f"sum({_raw(agent)})", _is(2.75), timeout=30)

    # Each replica's series is back on two Receive nodes, every copy complete.
    def copies_complete() -> bool:
        raw = pipe.query.raw(_raw(agent), dedup=False)
        by_replica = Counter(s["metric"]["replica"] for s in raw)
        return by_replica == {"A": 2, "B": 2} and {float(s["value"][1]) for s in raw} == {2.75}

    deadline = time.monotonic() + 60
    while not copies_complete():
        assert time.monotonic() < deadline, pipe.query.raw(_raw(agent), dedup=False)
        time.sleep(1)
    app.shutdown()


def _firing(pipe: ThanosStack, agent: str) -> Counter[str]:
    return Counter(
        alert["labels"]["alertname"]
        for _, alert in pipe.webhook.firing()
        if alert["labels"].get("gen_ai_agent_id") == agent
    )


def test_an_agent_crossing_its_thresholds_is_notified_once_through_thanos_rule(
    pipe: ThanosStack,
) -> None:
    app = pipe.app()
    # spender's daily limit is 1: 81.25 % (warning), then 106.25 % (critical and exhausted).
    app.cost("spender", 0.8125, provider="anthropic", model="claude-sonnet-4")
    app.flush()
    pipe.webhook.wait_for(
        lambda a: (
            a["labels"].get("alertname") == "SynthorgAgentBudgetWarning"
            and a["labels"].get("gen_ai_agent_id") == "spender"
        ),
        ALERT_TIMEOUT,
        "warning",
    )
    app.cost("spender", 0.25, provider="anthropic", model="claude-sonnet-4")
    app.flush()
    alert = pipe.webhook.wait_for(
        lambda a: (
            a["labels"].get("alertname") == "SynthorgAgentBudgetExhausted"
            and a["labels"].get("gen_ai_agent_id") == "spender"
        ),
        ALERT_TIMEOUT,
        "exhausted",
    )
    assert alert["labels"]["window"] == "daily" and alert["labels"]["severity"] == "critical"
    assert "replica" not in alert["labels"]  # no copy-identifying labels reach Alertmanager
    time.sleep(15)  # longer than group_wait: a duplicate would show up
    got = _firing(pipe, "spender")
    # Critical fires with Exhausted and may be inhibited by it before its first notification.
    assert got["SynthorgAgentBudgetWarning"] == 1 and got["SynthorgAgentBudgetExhausted"] == 1, got
    assert got["SynthorgAgentBudgetCritical"] <= 1 and len(got) <= 3, got
    assert _is(106.25)(pipe.value('synthorg_agent_budget_used_percent{gen_ai_agent_id="spender"}'))
    app.shutdown()


def test_every_dashboard_query_runs_unchanged_through_thanos_query(
    pipe: ThanosStack, apps: list[App]
) -> None:
    """The shipped dashboards' queries (rendered from this limits file, variables filled in as
    Grafana would) against Query: each must parse and return data, the pipeline-health ones
    from the telemetry the replicas scrape from the collector and Thanos Rule."""
    apps[0].cost("ceo", -1.0)  # dropped by the instrumentation: feeds the dropped-events panel
    apps[0].flush()
    dashboards = {
        name: json.loads(text)
        for name, text in render_dashboards(load_limits(pipe.limits_path), "x").items()
    }
    count, empty = 0, []
    deadline = time.monotonic() + 60  # rates over the scraped telemetry need two scrapes
    for file, dashboard in dashboards.items():
        for panel in panels._panels(dashboard):
            for target in panel["targets"]:
                count += 1
                # Series that exist only once something happened (early-warning history,
                # tasks with a task_id): they must parse here (run_target raises otherwise),
                # their values are the promtool tests' job.
                if series_used(target["expr"]) & panels.MAY_BE_EMPTY:
                    panels.run_target(pipe.query, target, panels.ALL)
                    continue
                while not (result := panels.run_target(pipe.query, target, panels.ALL)):
                    if time.monotonic() > deadline:
                        break
                    time.sleep(1)
                if not result:
                    empty.append(f"{file} / {panel['title']} / {target['expr']}")
    assert count >= 30, f"only {count} queries found"
    assert not empty, "queries with no data through Thanos Query:\n" + "\n".join(empty)


def test_evaluation_lag_of_the_ruler_is_measured(pipe: ThanosStack) -> None:
    """Seconds from a flushed cost being readable in Query (raw) to the ruler's recorded
    series showing it, and from record_cost to the recorded series (periodic export)."""
    agent, app = "lag", pipe.app()
    app.cost(agent, 0.0)
    app.flush()
    pipe.wait_value(_dtd(agent), _is(0.0), timeout=60)
    lags, end_to_end = [], []
    spent = 0.0
    for _ in range(5):
        started = time.monotonic()
        app.cost(agent, 0.25)
        spent += 0.25
        raw_at = None
        while True:
            now = time.monotonic()
            if raw_at is None and _is(spent)(pipe.value(f"sum({_raw(agent)})")):
                raw_at = now
            if _is(spent)(pipe.value(_dtd(agent))):
                break
            assert now - started < 120, "the recorded series did not follow"
            time.sleep(0.05)
        end_to_end.append(now - started)
        lags.append(now - (raw_at or now))
    durations = pipe.ruler_metric("prometheus_rule_group_last_duration_seconds")
    slowest = max(durations.values())
    print(
        f"\nTHANOS LAG raw visible in Query -> recorded series: median "
        f"{statistics.median(lags):.2f}s, max {max(lags):.2f}s; record_cost -> recorded series: "
        f"median {statistics.median(end_to_end):.2f}s, max {max(end_to_end):.2f}s "
        f"(export 0.5s, batch 1s, agent batch deadline 1s, rule interval 1s); "
        f"slowest rule group evaluation {slowest:.3f}s over {len(durations)} groups"
    )
    assert max(end_to_end) < 120
    app.shutdown()
