"""The early-warning sections of the limits file, their rules and `budgetwatch diff`.

Values and firing times are proven by promtool (alerts/tests/early_warning_*.yml); this file
checks what the limits file controls and the errors a person gets."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from budgetwatch.limits import LimitsError, parse_limits
from budgetwatch.limits_diff import render_diff
from budgetwatch.rules import ALERTS_FILE, RECORDING_FILE, render_rule_files

# The shipped limits.yaml without its (default-valued) early-warning sections.
_SHIPPED = (Path(__file__).resolve().parents[2] / "limits.yaml").read_text()
BASE = re.sub(r"# Early warning.*?\n(?=revisions:)", "", _SHIPPED, flags=re.S)


def _with(extra: str) -> str:
    return BASE.replace("\nrevisions:", f"\n{extra.rstrip()}\nrevisions:", 1)


def _group(text: str, file: str, suffix: str) -> list[dict[str, Any]]:
    files = render_rule_files(parse_limits(text, "limits.yaml"), "limits.yaml")
    (group,) = [g for g in yaml.safe_load(files[file])["groups"] if g["name"].endswith(suffix)]
    rules: list[dict[str, Any]] = group["rules"]
    return rules


def test_defaults_are_the_sre_workbook_pairs_and_the_issue_s_spike() -> None:
    assert "spike:" not in BASE and "spike:" in _SHIPPED
    # The shipped file spells the defaults out: the same limits.
    assert parse_limits(_SHIPPED, "a") == parse_limits(BASE, "a")
    limits = parse_limits(BASE, "limits.yaml")
    assert [(p.long, p.short, p.factor, p.severity) for p in limits.burn_rate.pairs] == [
        ("1h", "5m", 14.4, "critical"),
        ("6h", "30m", 6, "critical"),
        ("3d", "6h", 1, "warning"),
    ]
    s = limits.spike
    assert (s.window, s.baseline, s.min_history, s.factor, s.for_) == ("1h", "7d", "1d", 10, "10m")
    assert (limits.forecast.rate_window, limits.forecast.for_) == ("1d", "1h")


def test_alerts_follow_the_file() -> None:
    text = _with(
        "burn_rate:\n  for: 5m\n  pairs:\n"
        "    - {long: 2h, short: 10m, factor: 12, severity: critical}\n"
        "spike:\n  factor: 4\n  min_hourly: 2.5\n  for: 20m\n"
        "forecast:\n  for: 3h\n"
    )
    alerts = {
        (a["alert"], a["labels"].get("long_window")): a
        for a in _group(text, ALERTS_FILE, "early-warning-alerts")
    }
    burn = alerts[("SynthorgAgentBudgetBurnRateHigh", "2h")]
    assert burn["labels"] == {"long_window": "2h", "short_window": "10m", "severity": "critical"}
    assert burn["for"] == "5m"
    assert "synthorg:agent_budget:burn_rate2h >= 12" in burn["expr"]
    assert "synthorg:agent_budget:burn_rate10m >= 12" in burn["expr"]
    assert len([k for k in alerts if k[0].endswith("BurnRateHigh")]) == 2  # agent and org
    spike = alerts[("SynthorgAgentSpendSpike", None)]
    assert spike["for"] == "20m" and ">= 2.5" in spike["expr"] and "* 4)" in spike["expr"]
    assert alerts[("SynthorgAgentBudgetForecastOverrun", None)]["for"] == "3h"
    assert alerts[("SynthorgAgentBudgetForecastOverrun", None)]["labels"]["window"] == "monthly"


def test_long_windows_read_one_sample_per_agent_never_a_range_over_days() -> None:
    """The performance bar: no range selector longer than the checkpoint fallback."""
    for rule in _group(BASE, RECORDING_FILE, "early-warning") + _group(
        BASE, RECORDING_FILE, "spike"
    ):
        for rng in re.findall(r"\[(\w+)\]", rule["expr"]):
            assert rng == "30m", (rule["record"], rng)
    baseline = next(
        r
        for r in _group(BASE, RECORDING_FILE, "spike")
        if r["record"] == "synthorg:agent_cost:hourly_baseline"
    )
    # 7 days of history in whole days: 7 terms, the longest first.
    assert baseline["expr"].count("offset 1h -") == 7
    assert baseline["expr"].index("offset 608400s") < baseline["expr"].index("offset 90000s")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("spike:\n  factor: 0\n", "spike.factor: must be greater than 0, got 0"),
        ("spike:\n  min_hourly: yes\n", "spike.min_hourly: must be a number, got boolean true"),
        ("spike:\n  min_history: 5h\n", "spike.baseline: must be 1 to 28 times min_history (5h)"),
        ("forecast:\n  for: 1hour\n", "forecast.for: must be a duration"),
        ("burn_rate:\n  pairs: []\n", "burn_rate.pairs: must list at least one pair"),
        (
            "burn_rate:\n  pairs:\n    - {long: 5m, short: 1h, factor: 2, severity: critical}\n",
            "burn_rate.pairs[0].short: must be shorter than long (5m), got 1h",
        ),
        (
            "burn_rate:\n  pairs:\n    - {long: 1h, short: 5m, factor: 2, severity: page}\n",
            "burn_rate.pairs[0].severity: must be warning or critical, got 'page'",
        ),
        (
            "burn_rate:\n  pairs:\n    - {long: 1h, short: 5m, factor: 2, severity: critical}\n"
            "    - {long: 1h, short: 5m, factor: 3, severity: warning}\n",
            "burn_rate.pairs[1]: windows 1h/5m repeat pairs[0]",
        ),
        ("spike:\n  fator: 3\n", "spike.fator: unknown field (did you mean 'factor'?)"),
    ],
)
def test_bad_sections_name_the_field(extra: str, message: str) -> None:
    with pytest.raises(LimitsError) as err:
        parse_limits(_with(extra), "limits.yaml")
    assert message in str(err.value)


def test_diff_shows_early_warning_changes() -> None:
    old = parse_limits(BASE, "old.yaml")
    new = parse_limits(
        _with(
            "spike:\n  factor: 5\nburn_rate:\n  pairs:\n"
            "    - {long: 1h, short: 5m, factor: 10, severity: critical}\n"
            "    - {long: 3d, short: 6h, factor: 1, severity: warning}\n"
        ),
        "new.yaml",
    )
    text = render_diff(old, new, "old.yaml", "new.yaml")
    assert "spike.factor: 10 -> 5" in text
    assert "burn_rate pair 1h/5m: 14.4x critical -> 10x critical" in text
    assert "burn_rate pair 6h/30m: removed (was 6x critical)" in text
    assert "3d/6h" not in text  # unchanged
    assert "no changes" in render_diff(old, old, "a", "a")
