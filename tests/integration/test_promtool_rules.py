"""The generated rules, judged by the real promtool: `check rules`, and every unit-test file.

Each promtool test file under alerts/tests/ names its rules as `<stem>/rules/<file>`: the rules
the CURRENT generator renders from alerts/tests/limits/<stem>.yaml (the layout of
`budgetwatch render alerts/tests/limits/<stem>.yaml --output <dir>/<stem>`). They are rendered
into tmp_path next to a copy of the test file, so a test can never run against stale or
hand-written rules.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from budgetwatch.dev.stack import ROOT, run_tool
from budgetwatch.limits import load_limits
from budgetwatch.rules import alert_names, render_rule_files

TESTS_DIR = ROOT / "alerts" / "tests"
LIMITS_DIR = TESTS_DIR / "limits"
TEST_FILES = sorted(TESTS_DIR.glob("*.yml"))


def _render(limits_file: Path, out_dir: Path) -> list[Path]:
    limits = load_limits(limits_file)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_rule_files(limits, limits_file.name).items():
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def _stage(test_file: Path, workdir: Path) -> Path:
    """Render the rules a test file names and put a copy of the file beside them."""
    spec = yaml.safe_load(test_file.read_text(encoding="utf-8"))
    rule_files = spec.get("rule_files") or []
    assert rule_files, f"{test_file.name}: no rule_files"
    for rule_file in rule_files:
        parts = Path(rule_file).parts
        assert len(parts) == 3 and parts[1] == "rules", (
            f"{test_file.name}: rule file {rule_file!r} must be <limits stem>/rules/<file>"
        )
        limits_file = LIMITS_DIR / f"{parts[0]}.yaml"
        assert limits_file.is_file(), f"{test_file.name}: no {limits_file.relative_to(ROOT)}"
        rendered = {p.name for p in _render(limits_file, workdir / parts[0] / "rules")}
        assert parts[2] in rendered, f"{test_file.name}: the generator renders no {parts[2]}"
    staged = workdir / test_file.name
    shutil.copyfile(test_file, staged)
    return staged


def test_there_are_promtool_test_files() -> None:
    names = {p.name for p in TEST_FILES}
    assert {"day_to_date.yml", "alerts.yml", "limits.yml", "escaping.yml"} <= names


@pytest.mark.parametrize(
    "limits_file", [*sorted(LIMITS_DIR.glob("*.yaml")), ROOT / "limits.yaml"], ids=lambda p: p.name
)
def test_promtool_check_rules(limits_file: Path, tmp_path: Path) -> None:
    files = _render(limits_file, tmp_path)
    result = run_tool("promtool", "check", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr
    # Every rendered file was found and parsed (promtool names each with SUCCESS).
    assert result.stdout.count("SUCCESS") == len(files), result.stdout


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests(test_file: Path, tmp_path: Path) -> None:
    staged = _stage(test_file, tmp_path)
    result = run_tool("promtool", "test", "rules", staged, timeout=900)
    output = (result.stdout + result.stderr).replace(str(tmp_path) + "/", "")
    assert result.returncode == 0, output
    assert "SUCCESS" in result.stdout, output


def test_every_alert_is_unit_tested() -> None:
    """Each alert the rules define appears in some promtool alert_rule_test, firing."""
    limits = load_limits(LIMITS_DIR / "basic.yaml")
    fired: set[str] = set()
    for test_file in TEST_FILES:
        spec = yaml.safe_load(test_file.read_text(encoding="utf-8"))
        for group in spec["tests"]:
            for case in group.get("alert_rule_test") or []:
                if case.get("exp_alerts"):
                    fired.add(case["alertname"])
    missing = set(alert_names(limits)) - fired
    assert not missing, f"alerts never tested firing: {sorted(missing)}"
