"""The limits schema: what a valid file means (defaults, exemptions, revisions in force)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from budgetwatch.dev.stack import ROOT
from budgetwatch.limits import (
    MAX_FILE_BYTES,
    AgentLimits,
    Limits,
    LimitsError,
    Revision,
    format_path,
    load_limits,
    parse_limits,
)

TESTDATA = ROOT / "tests" / "testdata"
HEAD = "apiVersion: budgetwatch/v1\nkind: BudgetLimits\n"


def limits_with(body: str) -> Limits:
    return parse_limits(HEAD + body, "test.yaml")


def test_shipped_example_loads_with_contract_values() -> None:
    limits = load_limits(ROOT / "limits.yaml")
    assert limits.api_version == "budgetwatch/v1"
    assert (limits.namespace, limits.currency, limits.alert_prefix) == (
        "synthorg",
        "USD",
        "Synthorg",
    )
    assert limits.billing.reset_day == 1
    assert (limits.thresholds.warning, limits.thresholds.critical) == (75, 90)
    assert limits.thresholds.exhausted == 100
    [rev] = limits.revisions
    assert rev.effective_from == datetime(2026, 11, 1, tzinfo=UTC)
    assert (rev.org.monthly, rev.org.daily) == (1000, 50)
    # contract section 4: listed + key absent -> default; listed + null -> exempt.
    assert rev.agent_limits("daily") == {"cto": 20, "intern": 1, "auditor": None}
    assert rev.agent_limits("monthly") == {"cto": 300, "intern": None, "auditor": None}
    assert rev.default_limit("daily") == 10
    assert rev.default_limit("monthly") is None


def test_absent_key_takes_default_and_null_is_exempt_per_window() -> None:
    limits = limits_with(
        """
revisions:
  - revision: 1
    effective_from: 2026-11-01T00:00:00Z
    agent_defaults: {daily: 10, monthly: 200}
    agents:
      a: {daily: 3}
      b: {monthly: null}
      c: {}
      d: {daily: null, monthly: 50.5}
"""
    )
    rev = limits.revisions[0]
    assert rev.agent_limits("daily") == {"a": 3, "b": 10, "c": 10, "d": None}
    assert rev.agent_limits("monthly") == {"a": 200, "b": None, "c": 200, "d": 50.5}
    assert all(isinstance(v, float) for v in rev.agent_limits("monthly").values() if v)


def test_defaults_when_optional_sections_are_absent() -> None:
    limits = limits_with("revisions:\n  - revision: 3\n    effective_from: 2026-11-01T00:00:00Z\n")
    assert (limits.namespace, limits.currency, limits.billing.reset_day) == ("synthorg", "USD", 1)
    assert (limits.thresholds.warning, limits.thresholds.exhausted) == (75, 100)
    rev = limits.revisions[0]
    assert (rev.org.monthly, rev.org.daily) == (None, None)
    assert rev.agent_limits("daily") == {}
    assert rev.default_limit("daily") is None


def test_null_sections_mean_empty() -> None:
    limits = limits_with(
        "revisions:\n  - revision: 1\n    effective_from: 2026-11-01T00:00:00Z\n"
        "    org:\n    agent_defaults:\n    agents:\n"
    )
    assert limits.revisions[0].agents == {}
    assert limits.revisions[0].org.monthly is None


@pytest.mark.parametrize(
    "agent_id",
    ['say "hi"', "back\\slash", "研究員", "équipe.lead", "a b", "{x}", "cto-2/eu@west", "'"],
)
def test_unusual_agent_ids_are_accepted(agent_id: str) -> None:
    # The rules escape label values; the schema must not refuse these.
    escaped = agent_id.replace("\\", "\\\\").replace('"', '\\"')
    limits = limits_with(
        "revisions:\n  - revision: 1\n    effective_from: 2026-11-01T00:00:00Z\n"
        f'    agents:\n      "{escaped}": {{daily: 2}}\n'
    )
    assert limits.revisions[0].agent_limits("daily") == {agent_id: 2}


def test_revision_in_force_switches_exactly_at_effective_from() -> None:
    limits = limits_with(
        """
revisions:
  - revision: 1
    effective_from: 2026-11-01T00:00:00Z
  - revision: 7
    effective_from: 2026-11-20T13:30:15Z
"""
    )
    switch = datetime(2026, 11, 20, 13, 30, 15, tzinfo=UTC)
    assert limits.revision_at(datetime(2026, 10, 31, 23, 59, 59, tzinfo=UTC)) is None
    first = limits.revision_at(switch.replace(second=14))
    assert first is not None and first.revision == 1
    second = limits.revision_at(switch)
    assert second is not None and second.revision == 7
    assert second.effective_from_text == "2026-11-20T13:30:15Z"


def test_effective_from_accepts_plus_zero_and_lowercase_z() -> None:
    limits = limits_with(
        """
revisions:
  - revision: 1
    effective_from: 2026-11-01T00:00:00+00:00
  - revision: 2
    effective_from: "2026-12-01t00:00:00z"
"""
    )
    assert [r.effective_from for r in limits.revisions] == [
        datetime(2026, 11, 1, tzinfo=UTC),
        datetime(2026, 12, 1, tzinfo=UTC),
    ]


def test_yaml_anchors_can_share_limits() -> None:
    limits = limits_with(
        """
revisions:
  - revision: 1
    effective_from: 2026-11-01T00:00:00Z
    agents:
      cto: &exec {daily: 20, monthly: 300}
      cfo: *exec
"""
    )
    assert limits.revisions[0].agent_limits("monthly") == {"cto": 300, "cfo": 300}


def test_recursive_alias_is_an_error_not_a_crash() -> None:
    with pytest.raises(LimitsError, match=r"revisions\[0\]\.agents\.a"):
        limits_with(
            "revisions:\n  - revision: 1\n    effective_from: 2026-11-01T00:00:00Z\n"
            "    agents: &x\n      a: *x\n"
        )


def test_namespace_and_alert_prefix() -> None:
    limits = limits_with(
        "namespace: acme_ai\nrevisions:\n  - revision: 1\n"
        "    effective_from: 2026-11-01T00:00:00Z\n"
    )
    assert limits.alert_prefix == "Acme_ai"


def test_integer_limits_are_floats_and_numbers_keep_their_value() -> None:
    limits = limits_with(
        "revisions:\n  - revision: 1\n    effective_from: 2026-11-01T00:00:00Z\n"
        "    org: {monthly: 1.0e+3, daily: 0.015}\n"
    )
    assert limits.revisions[0].org.monthly == 1000.0
    assert limits.revisions[0].org.daily == 0.015


def test_yaml_1_1_exponent_without_dot_is_a_string_and_refused() -> None:
    # PyYAML reads `1e3` as text: refusing it beats silently ignoring a limit.
    with pytest.raises(
        LimitsError, match=r"org\.monthly: must be a number or null, got string '1e3'"
    ):
        limits_with(
            "revisions:\n  - revision: 1\n    effective_from: 2026-11-01T00:00:00Z\n"
            "    org: {monthly: 1e3}\n"
        )


def test_file_over_size_limit_is_refused_without_parsing(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text(HEAD + "#" + "x" * MAX_FILE_BYTES + "\n")
    with pytest.raises(LimitsError) as err:
        load_limits(path)
    assert str(err.value) == f"{path}: file is larger than {MAX_FILE_BYTES} bytes"


def test_missing_file_and_directory_are_named(tmp_path: Path) -> None:
    with pytest.raises(LimitsError, match=r"nope\.yaml: no such file$"):
        load_limits(tmp_path / "nope.yaml")
    with pytest.raises(LimitsError, match="is a directory"):
        load_limits(tmp_path)


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    with pytest.raises(LimitsError, match=r"test\.yaml"):
        parse_limits(HEAD + "x: " + "[" * 100_000 + "]" * 100_000 + "\n", "test.yaml")


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + (ROOT / "limits.yaml").read_bytes())
    assert load_limits(path).namespace == "synthorg"


def test_every_problem_is_reported_in_file_order() -> None:
    with pytest.raises(LimitsError) as err:
        limits_with(
            """
thresholds: {warning: 95, critical: 90}
revisions:
  - revision: 1
    effective_from: 2026-11-01T00:00:00Z
    org: {monthly: -1}
    agents:
      cto: {weekly: 3}
"""
        )
    assert err.value.problems == [
        "test.yaml:4:27: thresholds.critical: must be greater than warning (95), got 90",
        "test.yaml:8:11: revisions[0].org.monthly: must be greater than 0 (use null for no "
        "limit), got -1",
        "test.yaml:10:13: revisions[0].agents.cto.weekly: unknown field (allowed: daily, monthly, "
        "per_task)",
    ]
    assert str(err.value) == "\n".join(err.value.problems)


def test_models_are_immutable_and_forbid_extras_from_python() -> None:
    with pytest.raises(ValueError, match="dialy"):
        AgentLimits.model_validate({"dialy": 1})
    rev = Revision.model_validate(
        {"revision": 1, "effective_from": "2026-11-01T00:00:00Z", "agents": {"a": {"daily": 1}}}
    )
    with pytest.raises(ValueError, match="frozen"):
        rev.revision = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    ("path", "text"),
    [
        (("revisions", 1, "agents", "cto", "daily"), "revisions[1].agents.cto.daily"),
        (("revisions", 0, "agents", "team.lead"), 'revisions[0].agents["team.lead"]'),
        (("revisions", 0, "agents", 'a"b'), 'revisions[0].agents["a\\"b"]'),
        (("billing", "reset_day"), "billing.reset_day"),
    ],
)
def test_format_path(path: tuple[str | int, ...], text: str) -> None:
    assert format_path(path) == text


@pytest.mark.parametrize("path", sorted(TESTDATA.glob("*.yaml")), ids=lambda p: p.name)
def test_valid_testdata_loads(path: Path) -> None:
    assert load_limits(path).revisions
