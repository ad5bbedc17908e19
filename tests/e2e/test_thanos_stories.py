"""The outage stories of tests/e2e/test_outages.py, unchanged, with Thanos Rule as the evaluator.

The promtool stories (alerts/tests/*.yml) replay days and months at one evaluation a minute
in promtool's own engine; a live Thanos Rule cannot be replayed over the past, and the rules
carry state from their own previous output, so they must be evaluated step by step in real
time. These stories do exactly that on a short test calendar (a 60-second day, same generator,
same expressions, `Timing(day_seconds=60)`), with Query's lookback shortened to 10 s as
Prometheus's is there: the ruler is stopped across a day edge (and, in the second story, for
longer than the recovery span) while the raw data keeps flowing into Receive, and the period
and day figures read through Query must meet the same hand-computed bounds as on one
Prometheus. See thanos/README.md ("The stories on Thanos") for what differs and why.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.e2e import test_outages as outages
from tests.support.thanos import ThanosStack, thanos_stack

pytestmark = pytest.mark.e2e


@pytest.fixture
def short_calendar(tmp_path: Path) -> Iterator[ThanosStack]:
    with thanos_stack(
        tmp_path, outages._limits(tmp_path), timing=outages.SHORT, lookback=outages.LOOKBACK
    ) as stack:
        yield stack.with_ruler_as_evaluator()


@pytest.fixture
def short_recovery(tmp_path: Path) -> Iterator[ThanosStack]:
    with thanos_stack(
        tmp_path, outages._limits(tmp_path), timing=outages.LONG_GAP, lookback=outages.LOOKBACK
    ) as stack:
        yield stack.with_ruler_as_evaluator()


test_evaluator_stopped_across_a_day_edge_keeps_the_period_exact = (
    outages.test_evaluator_stopped_across_a_day_edge_keeps_the_period_exact
)
test_evaluator_down_longer_than_the_recovery_span_keeps_the_closed_days_and_flags_it = (
    outages.test_evaluator_down_longer_than_the_recovery_span_keeps_the_closed_days_and_flags_it
)
