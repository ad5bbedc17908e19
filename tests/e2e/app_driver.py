"""A real application process for end-to-end tests, driven over stdin.

argv[1] is a JSON object: service, endpoint (the collector's OTLP/HTTP base URL, passed the
standard way through OTEL_EXPORTER_OTLP_ENDPOINT), export_interval_s, and optionally
max_agents, headers, namespace. The process prints {"instance_id": ...} once started, then
reads one JSON command per line and answers each with one JSON line:
  {"op": "cost", "agent": ..., "cost": ..., "provider"?, "model"?, "input_tokens"?, "task_id"?}
  {"op": "task", "agent": ..., "status": ..., "task_id"?: ...}
  {"op": "call", "agent": ..., "outcome": ..., ...}
  {"op": "many_agents", "prefix": ..., "count": N, "cost": ...}   (a cardinality flood)
  {"op": "flush"} -> {"ok": bool}
  {"op": "shutdown"} -> {"ok": true}, then exits
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def main() -> int:
    settings: dict[str, Any] = json.loads(sys.argv[1])
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = settings["endpoint"]
    os.environ["OTEL_EXPORTER_OTLP_PROTOCOL"] = settings.get("protocol", "http/protobuf")

    from budgetwatch import BudgetTelemetry

    kwargs: dict[str, Any] = {"export_interval_s": settings.get("export_interval_s", 0.5)}
    for key in ("namespace", "max_agents", "headers"):
        if key in settings:
            kwargs[key] = settings[key]
    telemetry = BudgetTelemetry(settings["service"], **kwargs)
    reply({"instance_id": telemetry.instance_id})

    for line in sys.stdin:
        command: dict[str, Any] = json.loads(line)
        op = command.pop("op")
        try:
            if op == "cost":
                telemetry.record_cost(command.pop("agent"), command.pop("cost"), **command)
            elif op == "task":
                telemetry.record_task(
                    command["agent"], command["status"], task_id=command.get("task_id")
                )
            elif op == "call":
                telemetry.record_call(command.pop("agent"), **command)
            elif op == "many_agents":
                for i in range(command["count"]):
                    telemetry.record_cost(f"{command['prefix']}{i}", command["cost"])
            elif op == "flush":
                reply({"ok": telemetry.force_flush(command.get("timeout_s", 10.0))})
                continue
            elif op == "shutdown":
                telemetry.shutdown()
                reply({"ok": True})
                return 0
            else:
                reply({"error": f"unknown op {op!r}"})
                continue
        except Exception as err:  # report to the test instead of dying silently
            reply({"error": repr(err)})
            continue
        reply({"ok": True})
    telemetry.shutdown()
    return 0


def reply(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
