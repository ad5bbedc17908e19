"""budgetwatch: budgets of LLM agents as OTLP counters, Prometheus rules and Grafana dashboards.

Importing this package to record events stays light: it exposes the runtime API only. The
limits schema, the rule and dashboard generators and the CLI live in their own modules and
are imported only by the tools that need them.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .context import agent, current_agent
from .telemetry import BudgetTelemetry

__all__ = ["BudgetTelemetry", "__version__", "agent", "current_agent"]
