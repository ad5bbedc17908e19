"""End to end through incidents at window edges, with the real binaries (issue: outages).

(a) A Prometheus that first sees a process that has been running and spending (here: its TSDB
    wiped while the app goes on): no page from the lifetime counter, the figures count from
    first sight, and they are flagged partial.
(b) The rule evaluator (Prometheus) stopped across a window edge and started again. The edge
    comes from a short test calendar: the rules are rendered with a 60-second day
    (`Timing(day_seconds=60)`, same generator, same expressions) and Prometheus runs with a
    10 s lookback, so that a 25 s stop is a gap in rule evaluation (no heartbeat within the
    lookback) and the rules must recover their state from before the stop. The billing
    period is the real month: its figure must equal the ledger exactly.
(c) The evaluator down for longer than the recovery span (shortened to 20 s): the period
    recovers from the last edge the evaluator saw, loses the spend after it, and is flagged.

Each test runs its own pipeline (its own Prometheus flags and calendar). Costs are binary
fractions, so sums are exact.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.pipeline import App, Pipeline, pipeline

from budgetwatch.rules import Timing

pytestmark = pytest.mark.e2e

LIMITS = Path(__file__).with_name("limits-e2e.yaml")  # default agent daily limit 10 USD


def _limits(workdir: Path) -> Path:
    path = workdir / LIMITS.name
    path.write_text(LIMITS.read_text())
    return path


def _value(pipe: Pipeline, series: str, agent: str) -> float | None:
    return pipe.value(f'{series}{{gen_ai_agent_id="{agent}"}}')


def _close(want: float) -> object:
    return lambda v: v is not None and math.isclose(v, want, rel_tol=1e-9)


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Pipeline]:
    with pipeline(tmp_path, _limits(tmp_path)) as p:
        yield p


def test_prometheus_that_first_sees_a_running_process_neither_pages_nor_counts_its_past(
    fresh: Pipeline,
) -> None:
    pipe, agent = fresh, "weeks"
    app = pipe.app()
    app.cost(agent, 50.0)  # a lifetime of spend: 500 % of the default daily limit of 10
    app.flush()
    pipe.wait_value(_dtd(agent), _close(50.0), what="the first Prometheus counts it all")

    # A new Prometheus with an empty TSDB (a wiped disk, a new replica): the app goes on.
    pipe.prometheus.server.stop()
    shutil.rmtree(pipe.prometheus.server.workdir / "data")
    pipe.prometheus.server.start(timeout=120)
    pipe.wait_value(
        f'synthorg:agent_instance_cost:sum{{gen_ai_agent_id="{agent}"}}',
        _close(50.0),
        timeout=90,
        what="the new Prometheus sees the running counter",
    )
    app.cost(agent, 0.5)
    app.flush()
    # Spend since first sight only, as a lower bound, flagged for both windows.
    pipe.wait_value(_dtd(agent), _close(0.5), timeout=60, what="day-to-date from first sight")
    assert math.isclose(_value(pipe, "synthorg_agent_cost_period_to_date", agent) or 0, 0.5)
    assert math.isclose(_value(pipe, "synthorg_agent_budget_used_percent", agent) or 0, 5.0)
    partial = pipe.prometheus.query(f'synthorg_agent_cost_partial{{gen_ai_agent_id="{agent}"}}')
    assert sorted(p["metric"]["window"] for p in partial) == ["daily", "monthly"], partial
    # No page: the rules have evaluated long past the alerts' 5 s `for:` by now.
    time.sleep(8)
    alerts = pipe.prometheus.query(f'ALERTS{{gen_ai_agent_id="{agent}"}}')
    assert alerts == [], alerts
    app.shutdown()


def _dtd(agent: str) -> str:
    return f'synthorg_agent_cost_day_to_date{{gen_ai_agent_id="{agent}"}}'


# --- (b) the evaluator down across an edge ----------------------------------------------------

DAY_S = 60
LOOKBACK = "10s"
SHORT = Timing(day_seconds=DAY_S, recovery_span="10m", recovery_step="5s", baseline_bound_s=600)
STEP_COST = 1 / 64


def _spend_for(app: App, agent: str, seconds: float, ledger: list[tuple[float, float]]) -> None:
    """Record STEP_COST every 0.25 s for `seconds`, noting each (time, cost) in `ledger`."""
    end = time.time() + seconds
    while time.time() < end:
        app.cost(agent, STEP_COST)
        ledger.append((time.time(), STEP_COST))
        time.sleep(0.25)


@pytest.fixture
def short_calendar(tmp_path: Path) -> Iterator[Pipeline]:
    with pipeline(
        tmp_path,
        _limits(tmp_path),
        timing=SHORT,
        prometheus_args=[f"--query.lookback-delta={LOOKBACK}"],
    ) as p:
        yield p


def test_evaluator_stopped_across_a_day_edge_keeps_the_period_exact(
    short_calendar: Pipeline,
) -> None:
    pipe, agent = short_calendar, "edge"
    app = pipe.app()
    ledger: list[tuple[float, float]] = []  # (time recorded, cost)

    def spend_for(seconds: float) -> None:
        _spend_for(app, agent, seconds, ledger)

    app.cost(agent, 0.0)
    pipe.wait_value(_dtd(agent), lambda v: v is not None, timeout=60, what="agent seen")
    # Stop 8 s before an edge of the short calendar, at least 20 s from now; 25 s down.
    edge = (math.floor(time.time() / DAY_S) + 1) * DAY_S
    if edge - time.time() < 28:
        edge += DAY_S
    spend_for(edge - 8 - time.time())
    stopped_at = time.time()
    pipe.prometheus.server.stop()
    spend_for(25)  # the collector retries its remote write meanwhile
    pipe.prometheus.server.start(timeout=120)
    spend_for(10)
    app.flush()
    total = sum(cost for _, cost in ledger)

    # The period (the real month here) counts every cost once: exact.
    pipe.wait_value(
        f'synthorg_agent_cost_period_to_date{{gen_ai_agent_id="{agent}"}}',
        _close(total),
        timeout=60,
        what=f"period-to-date = ledger {total}",
    )
    # The day after the edge: everything spent since the edge, and at most what was spent
    # since the state the rules recovered (one recovery step plus the lookback before the
    # stop) - the documented tolerance of an evaluator gap across an edge.
    # Read at the day's last evaluation if the test has run past it.
    at = min(time.time(), edge + DAY_S - 1)
    result = pipe.prometheus.query(_dtd(agent), at=at)
    assert len(result) == 1, result
    day = float(result[0]["value"][1])
    since_edge = sum(c for t, c in ledger if edge <= t < at - 2)
    slack = 5 + 10 + 2  # recovery step + lookback + the export interval and jitter
    since_state = sum(c for t, c in ledger if t >= stopped_at - slack)
    assert since_edge - 1e-9 <= day <= since_state + 1e-9, (day, since_edge, since_state)
    assert pipe.prometheus.query(f'synthorg_agent_cost_partial{{gen_ai_agent_id="{agent}"}}') == []
    app.shutdown()


LONG_GAP = Timing(
    day_seconds=DAY_S,
    recovery_span="20s",
    recovery_step="5s",
    long_recovery_span="10m",
    long_recovery_step=f"{DAY_S}s",
    baseline_bound_s=600,
)


@pytest.fixture
def short_recovery(tmp_path: Path) -> Iterator[Pipeline]:
    with pipeline(
        tmp_path,
        _limits(tmp_path),
        timing=LONG_GAP,
        prometheus_args=[f"--query.lookback-delta={LOOKBACK}"],
    ) as p:
        yield p


def test_evaluator_down_longer_than_the_recovery_span_keeps_the_closed_days_and_flags_it(
    short_recovery: Pipeline,
) -> None:
    """Beyond the recovery span (here 20 s) the period recovers from the last edge the
    evaluator saw: what was spent before it stays, the rest is a lower bound, flagged."""
    pipe, agent = short_recovery, "longgap"
    app = pipe.app()
    ledger: list[tuple[float, float]] = []

    def spend_for(seconds: float) -> None:
        _spend_for(app, agent, seconds, ledger)

    app.cost(agent, 0.0)
    pipe.wait_value(_dtd(agent), lambda v: v is not None, timeout=60, what="agent seen")
    # Spend up to 20 s after the next edge, then stop for 50 s (longer than the recovery span;
    # the spend from the edge to a minute before the restart is the part a lower bound loses).
    edge = (math.floor(time.time() / DAY_S) + 1) * DAY_S
    spend_for(edge + 20 - time.time())
    pipe.prometheus.server.stop()
    spend_for(50)
    pipe.prometheus.server.start(timeout=120)
    spend_for(5)
    app.flush()
    total = sum(cost for _, cost in ledger)
    # What the period total held at the edge: evaluated up to the 10 s lookback before it.
    before_edge = sum(c for t, c in ledger if t < edge - 12)

    def recovered(v: float | None) -> bool:
        return v is not None and before_edge <= v <= total + 1e-9

    period = pipe.wait_value(
        f'synthorg_agent_cost_period_to_date{{gen_ai_agent_id="{agent}"}}',
        recovered,
        timeout=60,
        what=f"period between {before_edge} (spent before the edge) and {total}",
    )
    assert period is not None and period < total, (period, total)  # a lower bound
    partial = pipe.prometheus.query(
        f'synthorg_agent_cost_partial{{gen_ai_agent_id="{agent}",window="monthly"}}'
    )
    assert len(partial) == 1, partial
    app.shutdown()
