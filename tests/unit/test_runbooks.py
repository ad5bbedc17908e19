"""alerts/runbooks.md has a section for every alert, and every alert's runbook_url finds it.

The alerts come from two places: the table agreed between the rules and the Alertmanager
developers (below), and the rules actually rendered from limits.yaml (and committed under
alerts/rules/). A missing section, a runbook_url pointing nowhere, or a runbook naming a series
that does not exist fails here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support.contract import RAW_SERIES, RECORDED_SERIES

from budgetwatch import spec
from budgetwatch.dev.stack import ROOT

RUNBOOKS = ROOT / "alerts" / "runbooks.md"
DEFAULT_BASE = "alerts/runbooks.md"

# alertname without the namespace prefix -> the anchor id of its section (the spec's names,
# which tests/unit/test_spec.py checks against the contract).
ALERTS = {
    name.removeprefix("Synthorg"): anchor
    for name, anchor in spec.Alerts("synthorg").anchors().items()
}
PARTS = (
    "**What it means.**",
    "**How it is computed.**",
    "**Check first.**",
    "**What to do.**",
    "**How it resolves.**",
)

# Series a runbook may name: contract sections 3 and 5, the calls counter and the
# instrumentation's self-monitoring, section 8's per-task cost histogram (and the labels with
# the namespace in their name, which the scan below cannot tell from series); recorded series
# from the rendered rules are added below.
_NAMES = spec.Names("synthorg")
CONTRACT_SERIES = RAW_SERIES | RECORDED_SERIES | {_NAMES.task_cost}
NAMESPACED_LABELS = {_NAMES.task_status, _NAMES.call_outcome}


def sections(text: str) -> dict[str, str]:
    """anchor id -> the text from its anchor to the next one."""
    parts = re.split(r'<a id="([^"]+)"></a>\n', text)
    found: dict[str, str] = {}
    for anchor, body in zip(parts[1::2], parts[2::2], strict=True):
        assert anchor not in found, f"anchor {anchor!r} appears twice in {RUNBOOKS.name}"
        found[anchor] = body
    return found


SECTIONS = sections(RUNBOOKS.read_text())


def test_sections_parse_as_expected() -> None:
    """The parser itself: a file without a section for an alert is caught."""
    text = '<a id="budget-warning"></a>\n## SynthorgBudgetWarning\nbody\n'
    assert set(sections(text)) == {"budget-warning"}
    assert "agent-budget-warning" not in sections(text)


@pytest.mark.parametrize(("alert", "anchor"), sorted(ALERTS.items()))
def test_every_agreed_alert_has_a_complete_section(alert: str, anchor: str) -> None:
    assert anchor in SECTIONS, f"{RUNBOOKS.name} has no <a id={anchor!r}> for {alert}"
    body = SECTIONS[anchor]
    # The anchor sits right before the section's heading, which names the alert.
    assert body.splitlines()[0] == f"## Synthorg{alert}", body.splitlines()[0]
    for part in PARTS:
        assert part in body, f"section {anchor} lacks {part}"
    assert "```promql\n" in body, f"section {anchor} has no PromQL to paste"
    # A silence command for exactly this alert.
    silences = re.findall(r"^amtool silence add .*$", body, flags=re.M)
    assert any(f"alertname=Synthorg{alert} " in s + " " for s in silences), silences


def test_internal_links_point_at_anchors() -> None:
    text = RUNBOOKS.read_text()
    anchors = set(re.findall(r'<a id="([^"]+)"></a>', text))
    links = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert links, "no internal links found: the test would prove nothing"
    assert links <= anchors, sorted(links - anchors)


def _rendered_rules() -> dict[str, str] | None:
    try:
        from budgetwatch.limits import load_limits
        from budgetwatch.rules import render_rule_files
    except ImportError:
        return None
    limits = load_limits(ROOT / "limits.yaml")
    files: dict[str, str] = render_rule_files(limits, "limits.yaml")
    return files


def _alert_rules(files: dict[str, str]) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for text in files.values():
        for group in (yaml.safe_load(text) or {}).get("groups", []):
            rules.extend(r for r in group.get("rules", []) if "alert" in r)
    return rules


def _recorded(files: dict[str, str]) -> set[str]:
    names: set[str] = set()
    for text in files.values():
        for group in (yaml.safe_load(text) or {}).get("groups", []):
            names.update(r["record"] for r in group.get("rules", []) if "record" in r)
    return names


def test_series_named_in_runbooks_exist() -> None:
    """A typo in a query to paste during an incident is caught here, not at 3 a.m."""
    known = set(CONTRACT_SERIES)
    rendered = _rendered_rules()
    if rendered is not None:
        known |= _recorded(rendered)
    named = set(re.findall(r"\bsynthorg_[a-z0-9_]+\b", RUNBOOKS.read_text())) - NAMESPACED_LABELS
    assert "synthorg_agent_cost_day_to_date" in named
    assert named <= known, sorted(named - known)


def _check_runbook_urls(rules: list[dict[str, Any]], base: str, where: str) -> None:
    assert rules, f"no alerting rules in {where}"
    for rule in rules:
        name = rule["alert"]
        url = rule.get("annotations", {}).get("runbook_url")
        assert url, f"{where}: {name} has no runbook_url"
        path, _, anchor = url.partition("#")
        assert path == base, f"{where}: {name} runbook_url {url!r} is not under {base!r}"
        assert anchor in SECTIONS, f"{where}: {name} runbook_url {url!r} points nowhere"
        suffix = name.removeprefix("Synthorg")
        if suffix in ALERTS:
            assert anchor == ALERTS[suffix], f"{where}: {name} points at #{anchor}"
        else:
            # An alert beyond the agreed table still needs its own section.
            assert SECTIONS[anchor].splitlines()[0] == f"## {name}", f"{where}: {name}"


def test_rendered_alerts_point_at_their_sections() -> None:
    files = _rendered_rules()
    if files is None:
        pytest.skip("budgetwatch.rules is not written yet; the agreed table is checked above")
    rules = _alert_rules(files)
    _check_runbook_urls(rules, DEFAULT_BASE, "rules rendered from limits.yaml")
    # Every agreed alert is rendered: a runbook for an alert nobody sends helps nobody.
    assert {f"Synthorg{a}" for a in ALERTS} <= {r["alert"] for r in rules}


def test_committed_rules_point_at_sections() -> None:
    files = {p.name: p.read_text() for p in sorted((ROOT / "alerts" / "rules").glob("*.yml"))}
    if not _alert_rules(files):
        pytest.skip("alerts/rules/ holds no alerting rules yet (make generate)")
    _check_runbook_urls(_alert_rules(files), DEFAULT_BASE, "alerts/rules/")


def test_anchors_do_not_depend_on_the_namespace(tmp_path: Path) -> None:
    """Another namespace renames the alerts, not the runbook anchors they point at."""
    try:
        from budgetwatch.limits import parse_limits
        from budgetwatch.rules import render_rule_files
    except ImportError:
        pytest.skip("budgetwatch.rules is not written yet")
    text = (ROOT / "limits.yaml").read_text()
    text = re.sub(r"(?m)^namespace: \S+", "namespace: acme", text)
    files = render_rule_files(parse_limits(text, "acme.yaml"), "acme.yaml")
    rules = _alert_rules(files)
    assert {r["alert"] for r in rules} >= {f"Acme{a}" for a in ALERTS}
    for rule in rules:
        anchor = rule["annotations"]["runbook_url"].partition("#")[2]
        suffix = rule["alert"].removeprefix("Acme")
        assert anchor == ALERTS.get(suffix, anchor) and anchor in SECTIONS, rule["alert"]
