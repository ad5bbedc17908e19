"""The quick-start example in docs/instrumentation.md runs as written and its data arrives."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.support.otlp_receiver import OtlpReceiver

DOC = Path(__file__).resolve().parents[2] / "docs" / "instrumentation.md"


def test_quick_start_example_runs_and_pushes_what_it_says() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    example = next(b for b in blocks if "telemetry.shutdown()" in b)
    with OtlpReceiver() as receiver:
        done = subprocess.run(
            [sys.executable, "-c", example],
            env={**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.base_url},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 0, done.stderr
    cto = {
        "gen_ai.agent.id": "cto",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-sonnet-4",
    }
    assert receiver.value("synthorg.cost", cto) == 0.0123
    assert receiver.value("synthorg.tokens", {**cto, "gen_ai.token.type": "input"}) == 1200
    assert receiver.value("synthorg.calls", {**cto, "synthorg.call.outcome": "failed"}) == 1
    task = {"gen_ai.agent.id": "cto", "synthorg.task.status": "completed"}
    assert receiver.value("synthorg.tasks", task) == 1
