"""`budgetwatch diff`: the limits in force that change between two files, per agent, and when."""

from __future__ import annotations

from datetime import UTC, datetime

from budgetwatch.limits import Limits, parse_limits
from budgetwatch.limits_diff import limit_changes, render_diff

OLD = """apiVersion: budgetwatch/v1
kind: BudgetLimits
revisions:
  - revision: 1
    effective_from: 2026-11-01T00:00:00Z
    org: {monthly: 1000, daily: 50}
    agent_defaults: {daily: 10}
    agents:
      cto: {daily: 20, monthly: 300}
      intern: {daily: 1}
      auditor: {daily: null}
"""

REV2 = """  - revision: 2
    effective_from: 2026-12-01T12:00:00Z
    org: {monthly: 1200}
    agent_defaults: {daily: 10}
    agents:
      cto: {daily: 25, monthly: 300}
      intern: {daily: 1}
      "new \\"hire\\"": {daily: 3}
"""

NOW = datetime(2026, 11, 27, tzinfo=UTC)


def load(text: str) -> Limits:
    return parse_limits(text, "x.yaml")


def test_identical_files_report_no_change() -> None:
    old = load(OLD)
    assert limit_changes(old, old) == []
    assert render_diff(old, old, "a.yaml", "b.yaml") == (
        "budgetwatch diff a.yaml -> b.yaml\nno changes in limits, thresholds or settings\n"
    )


def test_new_revision_reports_each_changed_limit_from_its_effective_time() -> None:
    text = render_diff(load(OLD), load(OLD + REV2), "old.yaml", "new.yaml", now=NOW)
    assert text == (
        "budgetwatch diff old.yaml -> new.yaml\n"
        "\n"
        "revisions:\n"
        "  added revision 2, effective from 2026-12-01T12:00:00Z\n"
        "\n"
        "limits in force:\n"
        "  org\n"
        "    daily: 50 USD -> prorated from monthly, from 2026-12-01T12:00:00Z (revision 1 -> 2)\n"
        "    monthly: 1,000 USD -> 1,200 USD, from 2026-12-01T12:00:00Z (revision 1 -> 2)\n"
        "  agent auditor\n"
        "    daily: exempt -> 10 USD (default), from 2026-12-01T12:00:00Z (revision 1 -> 2)\n"
        "  agent cto\n"
        "    daily: 20 USD -> 25 USD, from 2026-12-01T12:00:00Z (revision 1 -> 2)\n"
        '  agent "new \\"hire\\""\n'
        "    daily: 10 USD (default) -> 3 USD, from 2026-12-01T12:00:00Z (revision 1 -> 2)\n"
    )


def test_unchanged_agents_are_not_mentioned() -> None:
    text = render_diff(load(OLD), load(OLD + REV2), "old.yaml", "new.yaml", now=NOW)
    # intern keeps daily 1 and (default) no monthly limit in both revisions.
    assert "intern" not in text
    assert "agent defaults" not in text


def test_explicit_value_equal_to_default_is_no_change() -> None:
    new = OLD.replace("intern: {daily: 1}", "intern: {daily: 1}\n      newbie: {daily: 10}")
    assert limit_changes(load(OLD), load(new)) == []


def test_edit_in_place_is_dated_from_that_revision_and_marked_in_force() -> None:
    new = OLD.replace("cto: {daily: 20", "cto: {daily: 22")
    [change] = limit_changes(load(OLD), load(new))
    assert (change.subject, change.window) == ("cto", "daily")
    assert (change.old.value, change.new.value) == (20, 22)
    assert change.since == datetime(2026, 11, 1, tzinfo=UTC)
    text = render_diff(load(OLD), load(new), "a", "b", now=NOW)
    assert "edited revision 1\n" in text
    assert (
        "daily: 20 USD -> 22 USD, from 2026-11-01T00:00:00Z (revision 1 -> 1, already in force)"
        in text
    )


def test_settings_changes_are_listed_with_their_consequence() -> None:
    new = OLD.replace(
        "kind: BudgetLimits\n",
        "kind: BudgetLimits\nnamespace: acme\nbilling: {reset_day: 15}\n"
        "thresholds: {warning: 80, critical: 90, exhausted: 100}\n",
    )
    text = render_diff(load(OLD), load(new), "a", "b")
    assert "  namespace: synthorg -> acme (every series and alert name changes" in text
    assert "  billing.reset_day: 1 -> 15 (the billing period starts on another day)\n" in text
    assert "  thresholds.warning: 75% -> 80%\n" in text
    assert "thresholds.critical" not in text
    assert "limits in force" not in text


def test_removed_revision_and_a_difference_that_ends() -> None:
    # NEW drops revision 2: from its start the two files disagree about cto's daily limit.
    old = load(OLD + REV2)
    new = load(OLD)
    changes = [c for c in limit_changes(old, new) if c.subject == "cto"]
    assert [(c.window, c.old.value, c.new.value) for c in changes] == [("daily", 25, 20)]
    text = render_diff(old, new, "a", "b")
    assert "removed revision 2 (was effective from 2026-12-01T12:00:00Z)" in text


def test_a_difference_ending_says_so() -> None:
    # A temporary cut in the new file's revision 2, restored by its revision 3.
    old = OLD + REV2.replace("revision: 2", "revision: 2").replace("daily: 25", "daily: 20")
    rev3 = REV2.replace("revision: 2", "revision: 3").replace("2026-12-01T12", "2026-12-05T00")
    new = OLD + REV2.replace("daily: 25", "daily: 5") + rev3.replace("daily: 25", "daily: 20")
    changes = [c for c in limit_changes(load(old), load(new)) if c.subject == "cto"]
    assert [(c.since and c.since.day, c.old.value, c.new.value) for c in changes] == [
        (1, 20, 5),
        (5, 20, 20),
    ]
    text = render_diff(load(old), load(new), "a", "b")
    assert "    daily: 20 USD in both again, from 2026-12-05T00:00:00Z (revision 2 -> 3)" in text


def test_first_revision_moved_later_leaves_a_gap_without_limits() -> None:
    new = OLD.replace("2026-11-01T00:00:00Z", "2026-11-10T00:00:00Z")
    changes = limit_changes(load(OLD), load(new))
    cto_daily = [c for c in changes if (c.subject, c.window) == ("cto", "daily")]
    assert cto_daily[0].since == datetime(2026, 11, 1, tzinfo=UTC)
    assert cto_daily[0].new.how == "no revision"
    assert cto_daily[0].new.text("USD") == "no limits (no revision in force)"


PER_TASK_OLD = """apiVersion: budgetwatch/v1
kind: BudgetLimits
revisions:
  - revision: 1
    effective_from: 2026-11-01T00:00:00Z
    agent_defaults: {daily: 10, per_task: 0.5}
    agents:
      cto: {per_task: 2}
      auditor: {per_task: null}
"""


def test_per_task_changes_per_subject_like_the_windows() -> None:
    new = PER_TASK_OLD + (
        "  - revision: 2\n"
        "    effective_from: 2026-12-01T00:00:00Z\n"
        "    agent_defaults: {daily: 10, per_task: 0.75}\n"
        "    agents:\n"
        "      cto: {per_task: 2}\n"
        "      auditor: {per_task: 1}\n"
    )
    text = render_diff(load(PER_TASK_OLD), load(new), "old.yaml", "new.yaml")
    assert text == (
        "budgetwatch diff old.yaml -> new.yaml\n"
        "\n"
        "revisions:\n"
        "  added revision 2, effective from 2026-12-01T00:00:00Z\n"
        "\n"
        "limits in force:\n"
        "  agent defaults (every agent not listed)\n"
        "    per_task: 0.5 USD -> 0.75 USD, from 2026-12-01T00:00:00Z (revision 1 -> 2)\n"
        "  agent auditor\n"
        "    per_task: exempt -> 1 USD, from 2026-12-01T00:00:00Z (revision 1 -> 2)\n"
    )


def test_per_task_removed_and_explicit_equal_to_default() -> None:
    # cto's explicit 2 becomes the default of 2: no change; agents on the default follow it.
    new = OLD.replace("agent_defaults: {daily: 10}", "agent_defaults: {daily: 10, per_task: 2}")
    old = OLD.replace(
        "cto: {daily: 20, monthly: 300}", "cto: {daily: 20, monthly: 300, per_task: 2}"
    )
    changes = limit_changes(load(old), load(new))
    assert [(c.subject, c.window, c.old.text("USD"), c.new.text("USD")) for c in changes] == [
        ("agent defaults", "per_task", "none", "2 USD"),
        ("auditor", "per_task", "none (default)", "2 USD (default)"),
        ("intern", "per_task", "none (default)", "2 USD (default)"),
    ]
    # no org per-task subject: the org has no such limit
    assert all(c.subject != "org" for c in limit_changes(load(new), load(old)))


def test_task_limit_and_coverage_settings_changes() -> None:
    new = OLD.replace(
        "revisions:",
        "task_limit: {max_over_limit_per_hour: 2}\ncoverage: {min_percent: 90, for: 30m}\n"
        "revisions:",
    )
    text = render_diff(load(OLD), load(new), "old.yaml", "new.yaml")
    assert text == (
        "budgetwatch diff old.yaml -> new.yaml\n"
        "\n"
        "settings:\n"
        "  task_limit.max_over_limit_per_hour: 0 -> 2\n"
        "  coverage.min_percent: 95 -> 90\n"
        "  coverage.for: 15m -> 30m\n"
    )
