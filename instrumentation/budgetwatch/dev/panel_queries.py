"""Panel queries as Grafana sends them to Prometheus, for running them outside Grafana (the
dashboard query tests, scripts/render_dashboard_pngs.py)."""

from __future__ import annotations

import re
from collections.abc import Mapping

# Grafana variables: $name and ${name}; not $1 (a regex group).
_VARIABLE_RE = re.compile(r"\$\{[^}]*\}|\$[a-zA-Z_]\w*")


def expand_variables(
    expr: str,
    *,
    range_s: int,
    interval_s: int,
    rate_interval_s: int,
    variables: Mapping[str, str] | None = None,
) -> str:
    """`expr` as Grafana sends it to Prometheus, for a dashboard range and variable values.

    `variables` maps template variables (agent, provider, model) to the regex Grafana would
    put in their place: ".*" for All. An unknown variable is an error, not left in the query.
    """
    values = {
        "__range": f"{range_s}s",
        "__range_s": str(range_s),
        "__interval": f"{interval_s}s",
        "__rate_interval": f"{rate_interval_s}s",
        **(variables or {}),
    }

    def fill(match: re.Match[str]) -> str:
        name = match.group(0).lstrip("$").strip("{}")
        if name not in values:
            raise KeyError(f"no value for ${name} in {expr!r}")
        return values[name]

    return _VARIABLE_RE.sub(fill, expr)
