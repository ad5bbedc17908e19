"""budgetwatch: budgets of LLM agents as OTLP counters, Prometheus rules and Grafana dashboards.

Importing this package to record events stays light: it exposes the runtime API only, and
loads it on first use (PEP 562), so `budgetwatch.cli` and the generators never pull in the
OpenTelemetry SDK. The limits schema, the rule and dashboard generators and the CLI live in
their own modules and are imported only by the tools that need them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from ._tasks import task_cost_view
    from .context import agent, current_agent
    from .telemetry import BudgetTelemetry

_LAZY = {
    "BudgetTelemetry": ".telemetry",
    "agent": ".context",
    "current_agent": ".context",
    "task_cost_view": "._tasks",
}

__all__ = ["BudgetTelemetry", "__version__", "agent", "current_agent", "task_cost_view"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'budgetwatch' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
