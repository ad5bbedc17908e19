"""Each file under tests/testdata/invalid/ is refused with exactly the message in its .error.

The message must name the file (as given), the line and column, the field path and the
problem. Regenerate the expected messages after a deliberate wording change with
BUDGETWATCH_UPDATE_GOLDEN=1, then review the diff.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from budgetwatch.dev.stack import ROOT
from budgetwatch.limits import LimitsError, load_limits

INVALID = ROOT / "tests" / "testdata" / "invalid"
CASES = sorted(INVALID.glob("*.yaml"))
UPDATE = os.environ.get("BUDGETWATCH_UPDATE_GOLDEN") == "1"


def _message(name: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(INVALID)
    with pytest.raises(LimitsError) as err:
        load_limits(name)
    return str(err.value)


def test_there_are_invalid_cases_and_each_has_its_message() -> None:
    assert len(CASES) >= 40
    missing = [p.name for p in CASES if not p.with_suffix(".error").is_file() and not UPDATE]
    assert missing == []
    orphans = [p.name for p in INVALID.glob("*.error") if not p.with_suffix(".yaml").is_file()]
    assert orphans == []


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_invalid_file_gives_its_message(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    message = _message(path.name, monkeypatch)
    expected_file = path.with_suffix(".error")
    if UPDATE:
        expected_file.write_text(message + "\n", encoding="utf-8")
    expected = expected_file.read_text(encoding="utf-8").rstrip("\n")
    assert message == expected
    # Every line names the file it is about.
    assert all(line.startswith(path.name + ":") for line in message.splitlines())


@pytest.mark.parametrize(
    "name",
    ["typo-agent-key.yaml", "api-version-unknown.yaml", "duplicate-agent.yaml", "not-utf8.yaml"],
)
def test_cli_validate_prints_the_same_message_and_exits_2(name: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "budgetwatch.cli", "validate", name],
        cwd=INVALID,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (INVALID / name).with_suffix(".error").read_text(encoding="utf-8")
    assert "Traceback" not in result.stderr
