"""Importing budgetwatch to record events does not pull in the tooling or its dependencies."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

HEAVY = (
    "budgetwatch.limits",
    "budgetwatch.rules",
    "budgetwatch.dashboards",
    "budgetwatch.cli",
    "pydantic",
    "yaml",
    "grpc",  # only when the gRPC protocol is chosen
)


def loaded_after(code: str) -> set[str]:
    script = textwrap.dedent(code) + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_import_and_record_loads_no_limits_rules_dashboards_cli_pydantic_or_yaml() -> None:
    modules = loaded_after(
        """
        import budgetwatch
        from budgetwatch.adapters import record_cost_record
        telemetry = budgetwatch.BudgetTelemetry("svc", endpoint="http://127.0.0.1:9", timeout_s=0.2)
        record_cost_record(telemetry, {"agent_id": "a", "cost": 0.5})
        """
    )
    assert "budgetwatch.telemetry" in modules  # the check itself works
    assert not {m for m in modules for heavy in HEAVY if m == heavy or m.startswith(heavy + ".")}


def test_the_check_would_see_a_heavy_import() -> None:
    # Guards the test above against passing vacuously.
    assert "yaml" in loaded_after("import yaml")


def test_the_cli_and_generators_never_load_the_runtime_exporter_wiring() -> None:
    modules = loaded_after(
        """
        import budgetwatch.cli, budgetwatch.limits, budgetwatch.rules
        budgetwatch.__version__
        """
    )
    assert "budgetwatch.cli" in modules  # the check itself works
    runtime = (
        "opentelemetry",
        "budgetwatch.telemetry",
        "budgetwatch._pipeline",
        "budgetwatch._otlp",
    )
    assert not {m for m in modules for r in runtime if m == r or m.startswith(r + ".")}
