"""`budgetwatch import-synthorg`: SynthOrg budget settings become a limits file that validates."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from budgetwatch.limits import Limits, parse_limits
from budgetwatch.spec import PER_TASK_FIELD
from budgetwatch.synthorg_import import (
    SynthOrgImportError,
    billing_period_start,
    import_synthorg,
    import_synthorg_file,
)

WHEN = datetime(2026, 11, 1, tzinfo=UTC)


def imported(data: Any, **kwargs: Any) -> Limits:
    result = import_synthorg(data, "synthorg.yaml", effective_from=WHEN, **kwargs)
    return parse_limits(result.text, "out.yaml")


def test_full_budget_section_maps_every_setting() -> None:
    limits = imported(
        {
            "company": {"name": "Acme"},
            "budget": {
                "total_monthly": 500,
                "per_agent_daily_limit": 12.5,
                "reset_day": 15,
                "currency": "EUR",
                "alerts": {"warn_at": 60, "critical_at": 85, "hard_stop_at": 100},
            },
        }
    )
    assert (limits.currency, limits.billing.reset_day) == ("EUR", 15)
    assert (limits.thresholds.warning, limits.thresholds.critical) == (60, 85)
    assert limits.thresholds.exhausted == 100
    [rev] = limits.revisions
    assert (rev.revision, rev.effective_from) == (1, WHEN)
    # SynthOrg's org daily budget is the monthly one prorated: no explicit daily.
    assert (rev.org.monthly, rev.org.daily) == (500, None)
    assert (rev.default_limit("daily"), rev.default_limit("monthly")) == (12.5, None)
    assert rev.agents == {}


def test_per_task_limit_becomes_the_agent_default_per_task_limit() -> None:
    rev = imported({"budget": {"total_monthly": 500, "per_task_limit": 0.75}}).revisions[0]
    assert rev.default_limit(PER_TASK_FIELD) == 0.75
    assert rev.agent_limits(PER_TASK_FIELD) == {}
    # absent: SynthOrg's default of 5, as SynthOrg reads it
    rev = imported({"budget": {"total_monthly": 500}}).revisions[0]
    assert rev.default_limit(PER_TASK_FIELD) == 5


def test_per_task_limit_zero_is_synthorg_disabled_so_no_limit() -> None:
    result = import_synthorg(
        {"budget": {"total_monthly": 50, "per_task_limit": 0}}, "s.yaml", effective_from=WHEN
    )
    rev = parse_limits(result.text, "out.yaml").revisions[0]
    assert (rev.default_limit(PER_TASK_FIELD), rev.default_limit("daily")) == (None, 10)
    assert result.notes == ["budget.per_task_limit is 0: agents get no per-task limit"]


def test_bare_section_and_synthorg_defaults() -> None:
    limits = imported({"per_task_limit": 5})
    assert (limits.currency, limits.billing.reset_day) == ("USD", 1)
    assert (limits.thresholds.warning, limits.thresholds.critical) == (75, 90)
    rev = limits.revisions[0]
    assert (rev.org.monthly, rev.default_limit("daily")) == (100, 10)


def test_total_monthly_zero_means_no_limits_at_all() -> None:
    result = import_synthorg(
        {"budget": {"total_monthly": 0, "per_agent_daily_limit": 10}},
        "s.yaml",
        effective_from=WHEN,
    )
    rev = parse_limits(result.text, "out.yaml").revisions[0]
    assert (rev.org.monthly, rev.default_limit("daily")) == (None, None)
    # SynthOrg ignores every limit when the monthly budget is 0: the per-task one too
    assert rev.default_limit(PER_TASK_FIELD) is None
    assert any("enforcement disabled" in note for note in result.notes)
    assert "enforcement disabled" in result.text


def test_per_agent_zero_means_no_agent_limit() -> None:
    rev = imported({"budget": {"total_monthly": 50, "per_agent_daily_limit": 0}}).revisions[0]
    assert (rev.org.monthly, rev.default_limit("daily")) == (50, None)


def test_ignored_keys_are_reported() -> None:
    result = import_synthorg(
        {"budget": {"per_task_limit": 5, "auto_downgrade": {}, "alerts": {"page_at": 1}}},
        "s.yaml",
        effective_from=WHEN,
    )
    assert result.notes == [
        "ignored budget.auto_downgrade: no Prometheus budget equivalent",
        "ignored budget.alerts.page_at: not a SynthOrg alert level",
    ]


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        ({"total_monthly": -1}, "s.yaml: budget.total_monthly: must be a finite number >= 0"),
        ({"total_monthly": "100"}, "s.yaml: budget.total_monthly: must be a number, got '100'"),
        ({"per_agent_daily_limit": True}, "budget.per_agent_daily_limit: must be a number"),
        ({"per_task_limit": -0.5}, "s.yaml: budget.per_task_limit: must be a finite number >= 0"),
        ({"per_task_limit": "5"}, "s.yaml: budget.per_task_limit: must be a number, got '5'"),
        ({"reset_day": 31}, "s.yaml: budget.reset_day: must be an integer from 1 to 28, got 31"),
        (
            {"alerts": {"warn_at": 90, "critical_at": 90}},
            "s.yaml: budget.alerts.critical_at: must be greater than warn_at (90), got 90",
        ),
        ({"alerts": {"warn_at": 0}}, "budget.alerts.warn_at: must be greater than 0"),
        ({"alerts": [1]}, "s.yaml: budget.alerts: must be a mapping"),
        ({"currency": "{X}"}, "s.yaml: budget.currency: must be a currency code"),
    ],
)
def test_bad_synthorg_values_name_the_key(budget: dict[str, Any], message: str) -> None:
    with pytest.raises(SynthOrgImportError) as err:
        import_synthorg({"budget": budget}, "s.yaml", effective_from=WHEN)
    assert str(err.value).startswith("s.yaml: ")
    assert message in str(err.value)


def test_not_synthorg_settings_at_all() -> None:
    with pytest.raises(SynthOrgImportError, match="no SynthOrg budget settings found"):
        import_synthorg({"apiVersion": "budgetwatch/v1"}, "s.yaml", effective_from=WHEN)
    with pytest.raises(SynthOrgImportError, match="top level must be a mapping"):
        import_synthorg([1], "s.yaml", effective_from=WHEN)


@pytest.mark.parametrize(
    ("now", "reset_day", "start"),
    [
        (datetime(2026, 11, 27, 9, tzinfo=UTC), 1, datetime(2026, 11, 1, tzinfo=UTC)),
        (datetime(2026, 11, 14, 23, 59, tzinfo=UTC), 15, datetime(2026, 10, 15, tzinfo=UTC)),
        (datetime(2026, 11, 15, tzinfo=UTC), 15, datetime(2026, 11, 15, tzinfo=UTC)),
        (datetime(2026, 1, 3, tzinfo=UTC), 28, datetime(2025, 12, 28, tzinfo=UTC)),
    ],
)
def test_default_effective_from_is_the_billing_period_start(
    now: datetime, reset_day: int, start: datetime
) -> None:
    assert billing_period_start(now, reset_day) == start
    result = import_synthorg({"budget": {"reset_day": reset_day}}, "s.yaml", now=now)
    assert parse_limits(result.text, "o.yaml").revisions[0].effective_from == start


def test_file_with_yaml_problems(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("budget:\n  total_monthly: 1\n  total_monthly: 2\n")
    with pytest.raises(SynthOrgImportError) as err:
        import_synthorg_file(str(path))
    assert str(err.value) == f"{path}:3:3: YAML error: duplicate key 'total_monthly' " + (
        "(first defined at line 2)"
    )


def test_output_header_names_the_file_not_its_directory(tmp_path: Path) -> None:
    path = tmp_path / "company.yaml"
    path.write_text("budget:\n  total_monthly: 10\n")
    result = import_synthorg_file(str(path), effective_from=WHEN)
    assert result.text.startswith("# Imported by budgetwatch import-synthorg from company.yaml ")
    assert str(tmp_path) not in result.text


SYNTHORG = Path(__file__).resolve().parents[1] / "testdata" / "synthorg"


@pytest.mark.parametrize("name", ["company", "disabled", "no-task-limit"])
def test_import_golden(name: str) -> None:
    """tests/testdata/synthorg/<name>.yaml imports exactly to <name>.limits.yaml.

    Regenerate after a deliberate change with BUDGETWATCH_UPDATE_GOLDEN=1.
    """
    config = SYNTHORG / f"{name}.yaml"
    result = import_synthorg_file(str(config), effective_from=WHEN)
    expected = SYNTHORG / f"{name}.limits.yaml"
    if os.environ.get("BUDGETWATCH_UPDATE_GOLDEN") == "1":
        expected.write_text(result.text, encoding="utf-8")
    assert result.text == expected.read_text(encoding="utf-8")
    assert parse_limits(result.text, expected.name).revisions[0].effective_from == WHEN
