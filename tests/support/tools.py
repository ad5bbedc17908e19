"""Where the real binaries built by `make tools` live, and how to run them."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOLS_BIN = ROOT / ".tools" / "bin"
TOOL_NAMES = (
    "otelcol",
    "prometheus",
    "promtool",
    "alertmanager",
    "amtool",
    "dashcheck",
    "thanos",
)


def tool(name: str) -> Path:
    """Path of a binary from `make tools`; a clear failure when it was not built."""
    path = TOOLS_BIN / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `make tools` (make test does it for you)")
    return path


def run_tool(
    name: str, *args: str | Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run a tool to completion and return its result (never raises on a non-zero exit)."""
    return subprocess.run(
        [str(tool(name)), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
