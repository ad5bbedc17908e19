"""End to end under the faults production sees: thresholds crossed, restarts, bad traffic.

One real pipeline for the module (tests/e2e/conftest.py); each case uses its own agent ids.
Costs are binary fractions so totals compare exactly. Order matters only for speed: the
cardinality flood runs last, so earlier cases evaluate rules over few series.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from tests.support.pipeline import Pipeline
from tests.support.rawotlp import cost_request

from budgetwatch.dev.stack import http_get

pytestmark = pytest.mark.e2e

# A notification needs the alert's `for:` (5s here, see tests/support/pipeline.py; at most 5m
# as shipped) plus evaluation and Alertmanager's group_wait (30s as shipped): generous bound.
ALERT_TIMEOUT = 420


def _dtd(agent: str) -> str:
    return f'synthorg_agent_cost_day_to_date{{gen_ai_agent_id="{agent}"}}'


def _is(total: float) -> Any:
    return lambda v: v is not None and math.isclose(v, total, rel_tol=1e-9)


def _post(url: str, body: bytes, content_type: str) -> int:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def _assert_up(pipe: Pipeline) -> None:
    assert pipe.collector.server.alive(), pipe.collector.server.tail()
    assert pipe.prometheus.server.alive(), pipe.prometheus.server.tail()
    assert http_get(f"{pipe.prometheus.url}/-/ready")[0] == 200


# --- thresholds, inhibition, Prometheus restart ----------------------------------------------


def _alert_for(agent: str, alertname: str) -> Callable[[dict[str, Any]], bool]:
    def match(alert: dict[str, Any]) -> bool:
        labels = alert["labels"]
        return bool(labels.get("alertname") == alertname and labels.get("gen_ai_agent_id") == agent)

    return match


def _level_alerts(pipe: Pipeline, agent: str) -> dict[str, list[dict[str, Any]]]:
    """Firing notifications the webhook got for `agent`, by alertname."""
    out: dict[str, list[dict[str, Any]]] = {}
    for _, alert in pipe.webhook.firing():
        if alert["labels"].get("gen_ai_agent_id") == agent:
            out.setdefault(alert["labels"]["alertname"], []).append(alert)
    return out


def test_agent_crossing_each_threshold_is_notified_once_and_survives_a_prometheus_restart(
    pipe: Pipeline,
) -> None:
    app = pipe.app()
    steps = [  # spender's daily limit is 1: 81.25 %, 93.75 %, 106.25 %
        (0.8125, "Warning", "warning", "warning"),
        (0.125, "Critical", "critical", "critical"),
        (0.125, "Exhausted", "exhausted", "critical"),
    ]
    spent = 0.0
    timings = []
    for cost, level, budget_level, severity in steps:
        started = time.monotonic()
        app.cost("spender", cost, provider="anthropic", model="claude-sonnet-4")
        app.flush()
        spent += cost
        name = f"SynthorgAgentBudget{level}"
        alert = pipe.webhook.wait_for(_alert_for("spender", name), ALERT_TIMEOUT, name)
        timings.append(f"{level} {time.monotonic() - started:.0f}s")
        labels, annotations = alert["labels"], alert["annotations"]
        assert labels["window"] == "daily"
        assert labels["severity"] == severity
        assert labels["budget_level"] == budget_level
        assert annotations["runbook_url"].endswith(f"#agent-budget-{budget_level}")
        assert annotations["summary"] and "spender" in annotations["description"]
    print(f"\nthreshold notifications after each step: {', '.join(timings)}")

    # Longer than group_wait: a duplicate or a late lower-level notification would show up.
    time.sleep(15)
    got = _level_alerts(pipe, "spender")
    for level in ("Warning", "Critical", "Exhausted"):
        assert len(got.get(f"SynthorgAgentBudget{level}", [])) == 1, got

    # The lower levels are still firing in Prometheus but inhibited in Alertmanager.
    states = {
        a["labels"]["alertname"]: a["status"]
        for a in pipe.alertmanager.alerts()
        if a["labels"].get("gen_ai_agent_id") == "spender"
    }
    for level in ("Warning", "Critical"):
        status = states[f"SynthorgAgentBudget{level}"]
        assert status["state"] == "suppressed" and status["inhibitedBy"], (level, status)
    assert states["SynthorgAgentBudgetExhausted"]["state"] == "active"

    # Prometheus restarted: the derived series come back with the same value (the TSDB and
    # the counters survive), and the alert fires again.
    pipe.restart_prometheus()
    pipe.wait_value(_dtd("spender"), _is(spent), timeout=60, what="spender after restart")
    pipe.wait_value(
        'synthorg_agent_budget_used_percent{gen_ai_agent_id="spender"}',
        _is(spent * 100),
        timeout=60,
    )
    deadline = time.monotonic() + ALERT_TIMEOUT
    while not pipe.alerts_firing("SynthorgAgentBudgetExhausted", gen_ai_agent_id="spender"):
        assert time.monotonic() < deadline, "Exhausted did not fire again after the restart"
        time.sleep(1)
    app.shutdown()


# --- the collector killed mid-run --------------------------------------------------------------


def test_collector_killed_and_restarted_loses_nothing(pipe: Pipeline) -> None:
    app = pipe.app(export_interval_s=0.5)
    total = 0.0
    for _ in range(8):
        app.cost("worker-c", 0.125)
        total += 0.125
    app.flush()
    pipe.wait_value(_dtd("worker-c"), _is(total), timeout=60)

    pipe.collector.server.kill()
    for _ in range(8):  # recorded while the collector is down: exports fail meanwhile
        app.cost("worker-c", 0.25)
        total += 0.25
        time.sleep(0.25)
    pipe.collector.server.start()
    for _ in range(4):
        app.cost("worker-c", 0.0625)
        total += 0.0625
    app.flush()
    # Cumulative counters: the first export after recovery carries everything.
    pipe.wait_value(_dtd("worker-c"), _is(total), timeout=90, what="worker-c after recovery")
    time.sleep(3)  # and stays there: nothing counted twice
    assert _is(total)(pipe.value(_dtd("worker-c")))
    app.shutdown()


# --- an app process killed and restarted ---------------------------------------------------------


def test_app_killed_and_restarted_neither_double_counts_nor_loses_what_was_exported(
    pipe: Pipeline,
) -> None:
    # A long export interval: only explicit flushes export, so the test knows what left.
    first = pipe.app(export_interval_s=3600)
    first.cost("worker-r", 1.5)
    first.task("worker-r", "in_progress")
    first.flush()
    pipe.wait_value(_dtd("worker-r"), _is(1.5), timeout=60)
    first.cost("worker-r", 0.25)  # never exported: lost with the process, by design
    first.kill()

    second = pipe.app(export_interval_s=3600)
    assert second.instance_id != first.instance_id
    second.cost("worker-r", 0.5)
    second.task("worker-r", "completed")
    second.flush()
    pipe.wait_value(_dtd("worker-r"), _is(2.0), timeout=60, what="worker-r after app restart")
    time.sleep(3)
    assert _is(2.0)(pipe.value(_dtd("worker-r")))
    raw = pipe.values('sum by (instance) (synthorg_cost_total{gen_ai_agent_id="worker-r"})')
    assert raw == {f"instance={first.instance_id}": 1.5, f"instance={second.instance_id}": 0.5}
    tasks = pipe.values('synthorg_agent_tasks_day_to_date{gen_ai_agent_id="worker-r"} > 0')
    assert sorted(tasks.values()) == [1.0, 1.0] and len(tasks) == 2, tasks
    second.shutdown()


# --- bad traffic -------------------------------------------------------------------------------


def test_malformed_otlp_is_refused_and_the_pipeline_stays_up(pipe: Pipeline) -> None:
    url = f"{pipe.otlp_http}/v1/metrics"
    assert _post(url, b"\x00\xffnot protobuf at all", "application/x-protobuf") == 400
    assert _post(url, b'{"resourceMetrics": [', "application/json") == 400
    assert _post(url, json.dumps({"resourceMetrics": "nope"}).encode(), "application/json") == 400
    _assert_up(pipe)
    # Good traffic right after still flows (a new series, 0 first as the contract says).
    for value in (0.0, 0.5):
        request = cost_request("after-garbage", value, "rogue-1")
        assert _post(url, request, "application/x-protobuf") == 200
        time.sleep(1.5)
    pipe.wait_value(_dtd("after-garbage"), _is(0.5), timeout=60)


def test_an_agent_id_of_10000_characters_does_not_break_anything(pipe: Pipeline) -> None:
    huge = "a" * 10_000
    url = f"{pipe.otlp_http}/v1/metrics"
    # Straight to the collector, past the library's own checks.
    status = _post(url, cost_request(huge, 0.25, "rogue-2"), "application/x-protobuf")
    assert status in (200, 400), status
    # And through the library, next to a normal event from the same process.
    app = pipe.app()
    app.cost(huge, 0.25)
    app.cost("beside-huge", 0.75)
    app.flush()
    pipe.wait_value(_dtd("beside-huge"), _is(0.75), timeout=60)
    _assert_up(pipe)
    # Whatever the library did with it, the spend was not silently lost: it is either
    # recorded (under some agent id) or counted as dropped.
    instance = app.instance_id
    spent = pipe.value(f'sum(synthorg_cost_total{{instance="{instance}"}})') or 0.0
    dropped = pipe.value(f'sum(synthorg_telemetry_dropped_total{{instance="{instance}"}})') or 0.0
    assert math.isclose(spent, 1.0) or (math.isclose(spent, 0.75) and dropped >= 1), (
        spent,
        dropped,
    )
    # And the library did not pass a 10,000-character label value on.
    ids = [
        r["metric"].get("gen_ai_agent_id", "")
        for r in pipe.prometheus.query(f'synthorg_cost_total{{instance="{instance}"}}')
    ]
    assert ids and max(map(len, ids)) < len(huge), sorted(map(len, ids))
    app.shutdown()


def test_five_thousand_agents_from_one_process_stay_within_the_cardinality_bound(
    pipe: Pipeline,
) -> None:
    cost = 2.0**-12  # binary: 5,000 of them still sum exactly
    app = pipe.app()
    app.send("many_agents", prefix="flood-", count=5000, cost=cost)
    app.flush()
    instance = app.instance_id
    selector = f'synthorg_cost_total{{instance="{instance}"}}'
    pipe.wait_value(f"sum({selector})", _is(5000 * cost), timeout=120, what="flood total")

    # max_agents (default 2000) distinct ids, the rest folded into _overflow: no spend lost.
    agents = pipe.values(f"sum by (gen_ai_agent_id) ({selector})")
    assert len(agents) == 2001, len(agents)
    assert math.isclose(agents["gen_ai_agent_id=_overflow"], 3000 * cost)
    dropped = pipe.value(
        f'sum(synthorg_telemetry_dropped_total{{instance="{instance}",reason="agent_overflow"}})'
    )
    assert dropped == 3000
    # Every per-process series family is bounded the same way.
    for family in ("synthorg_calls_total", "synthorg_tokens_total"):
        count = pipe.value(f'count(count by (gen_ai_agent_id) ({family}{{instance="{instance}"}}))')
        assert count is None or count <= 2001, (family, count)
    # The recording rules carry the bound through to the series users query.
    pipe.wait_value(
        'count(synthorg_agent_cost_day_to_date{gen_ai_agent_id=~"flood-.*|_overflow"})',
        lambda v: v == 2001,
        timeout=60,
    )
    _assert_up(pipe)
    app.shutdown()
