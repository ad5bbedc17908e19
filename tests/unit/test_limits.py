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
from budgetwatch.spec import PER_TASK_FIELD

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


# --------------------------------------------------------------------------- per task

PER_TASK = """
task_limit: {max_over_limit_per_hour: 3}
coverage: {min_percent: 99.5, for: 30m}
revisions:
  - revision: 1
    effective_from: 2026-11-01T00:00:00Z
    agent_defaults: {daily: 10, per_task: 0.25}
    agents:
      cto: {per_task: 2}
      intern: {daily: 1}
      auditor: {per_task: null}
  - revision: 2
    effective_from: 2026-11-02T00:00:00Z
    agent_defaults: {per_task: 2}
    agents:
      cto: {daily: 5, per_task: 0.75}
  - revision: 3
    effective_from: 2026-11-03T00:00:00Z
"""


def test_per_task_default_explicit_inherited_and_exempt() -> None:
    rev1, rev2, rev3 = limits_with(PER_TASK).revisions
    assert rev1.default_limit(PER_TASK_FIELD) == 0.25
    # intern sets daily only: its per-task limit is the default; auditor is exempt (null)
    assert rev1.agent_limits(PER_TASK_FIELD) == {"cto": 2, "intern": 0.25, "auditor": None}
    assert rev2.agent_limits(PER_TASK_FIELD) == {"cto": 0.75}
    assert rev2.default_limit(PER_TASK_FIELD) == 2
    # absent everywhere: no per-task limit
    assert rev3.default_limit(PER_TASK_FIELD) is None and rev3.agent_limits(PER_TASK_FIELD) == {}
    # the windows are unchanged by the new field
    assert rev1.agent_limits("daily") == {"cto": 10, "intern": 1, "auditor": 10}
    assert rev1.agents["cto"].sets(PER_TASK_FIELD) and not rev1.agents["intern"].sets(
        PER_TASK_FIELD
    )


def test_per_task_values_are_the_distinct_limits_of_every_revision_ascending() -> None:
    assert limits_with(PER_TASK).per_task_values() == (0.25, 0.75, 2.0)
    no_task = limits_with("revisions:\n  - revision: 1\n    effective_from: 2026-11-01T00:00:00Z\n")
    assert no_task.per_task_values() == ()


def test_task_limit_and_coverage_sections_and_their_defaults() -> None:
    limits = limits_with(PER_TASK)
    assert limits.task_limit.max_over_limit_per_hour == 3
    assert (limits.coverage.min_percent, limits.coverage.for_) == (99.5, "30m")
    assert limits.coverage.min_ratio == pytest.approx(0.995)
    default = limits_with("revisions:\n  - revision: 1\n    effective_from: 2026-11-01T00:00:00Z\n")
    assert default.task_limit.max_over_limit_per_hour == 0
    assert (default.coverage.min_percent, default.coverage.for_) == (95, "15m")
    edge = limits_with(
        "task_limit: {max_over_limit_per_hour: 0}\ncoverage: {min_percent: 100}\n"
        "revisions:\n  - revision: 1\n    effective_from: 2026-11-01T00:00:00Z\n"
    )
    assert (edge.task_limit.max_over_limit_per_hour, edge.coverage.min_percent) == (0, 100)


def test_shipped_example_has_per_task_limits_and_the_new_sections() -> None:
    limits = load_limits(ROOT / "limits.yaml")
    rev = limits.revisions[0]
    assert rev.default_limit(PER_TASK_FIELD) == 0.5
    assert rev.agent_limits(PER_TASK_FIELD)["cto"] == 2
    assert limits.task_limit.max_over_limit_per_hour == 0
    assert (limits.coverage.min_percent, limits.coverage.for_) == (95, "15m")


_REV = "revisions:\n  - revision: 1\n    effective_from: 2026-11-01T00:00:00Z\n"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            _REV + "    agent_defaults: {per_task: 0}\n",
            "test.yaml:6:22: revisions[0].agent_defaults.per_task: must be greater than 0 "
            "(use null for no limit), got 0",
        ),
        (
            _REV + "    agents:\n      cto: {per_task: -2}\n",
            "test.yaml:7:13: revisions[0].agents.cto.per_task: must be greater than 0 "
            "(use null for no limit), got -2",
        ),
        (
            _REV + "    agents:\n      cto: {per_task: '1.5'}\n",
            "test.yaml:7:13: revisions[0].agents.cto.per_task: must be a number or null, "
            "got string '1.5'",
        ),
        (
            _REV + "    agent_defaults: {per_tsk: 1}\n",
            "test.yaml:6:22: revisions[0].agent_defaults.per_tsk: unknown field "
            "(did you mean 'per_task'?)",
        ),
        (
            "task_limit: {max_over_limit_per_hour: -1}\n" + _REV,
            "test.yaml:3:14: task_limit.max_over_limit_per_hour: must be 0 or more, got -1",
        ),
        (
            "task_limit: {max_over_limit_per_hour: yes}\n" + _REV,
            "test.yaml:3:14: task_limit.max_over_limit_per_hour: must be a number of tasks, "
            "got boolean true",
        ),
        (
            "task_limit: {max_per_hour: 2}\n" + _REV,
            "test.yaml:3:14: task_limit.max_per_hour: unknown field "
            "(allowed: max_over_limit_per_hour)",
        ),
        (
            "task_limit: 2\n" + _REV,
            "test.yaml:3:1: task_limit: must be a mapping, got int 2",
        ),
        (
            "coverage: {min_percent: 0}\n" + _REV,
            "test.yaml:3:12: coverage.min_percent: must be a percentage greater than 0 and at "
            "most 100, got 0",
        ),
        (
            "coverage: {min_percent: 101}\n" + _REV,
            "test.yaml:3:12: coverage.min_percent: must be a percentage greater than 0 and at "
            "most 100, got 101",
        ),
        (
            "coverage: {min_percent: '95%'}\n" + _REV,
            "test.yaml:3:12: coverage.min_percent: must be a number, got string '95%'",
        ),
        (
            "coverage: {for: 15}\n" + _REV,
            "test.yaml:3:12: coverage.for: must be a duration: a whole number and one unit of "
            "s, m, h, d (e.g. 5m, 1h, 3d), got 15",
        ),
        (
            "coverage: {min_percnt: 90}\n" + _REV,
            "test.yaml:3:12: coverage.min_percnt: unknown field (did you mean 'min_percent'?)",
        ),
    ],
)
def test_bad_per_task_and_coverage_input_names_the_field(body: str, message: str) -> None:
    with pytest.raises(LimitsError) as err:
        limits_with(body)
    assert str(err.value) == message
