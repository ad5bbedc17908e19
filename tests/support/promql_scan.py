"""Which series a PromQL expression selects: a regex scanner for the dashboard tests.

The tests check with it that every panel queries only series the pipeline produces
(`budgetwatch.spec.Names.origins`); tests/integration/test_dashboard_queries.py checks the
scanner itself against PromQL's own parser.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from budgetwatch.dashboards import DashboardDef, iter_queries

# PromQL words that look like series names but are not.
_PROMQL_WORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
     "bool", "offset", "start", "end", "inf", "nan", "atan2"}
)  # fmt: skip
_STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_BRACES_RE = re.compile(r"\{[^{}]*\}|\[[^\[\]]*\]")
_GROUPING_RE = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_VARIABLE_RE = re.compile(r"\$\{[^}]*\}|\$[a-zA-Z_]\w*")  # not $1: a regex group
_NAME_RE = re.compile(r"(?<![\w:.])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()")


def series_used(expr: str) -> set[str]:
    """Names of the series a PromQL expression selects (functions, labels, keywords excluded)."""
    text = _VARIABLE_RE.sub(" ", _STRING_RE.sub('""', expr))
    text = _GROUPING_RE.sub(" ", text)
    while True:  # nested label matchers and ranges, innermost first
        stripped = _BRACES_RE.sub(" ", text)
        if stripped == text:
            break
        text = stripped
    return {name for name in _NAME_RE.findall(text) if name.lower() not in _PROMQL_WORDS}


def unknown_series(definition: DashboardDef, known: Mapping[str, str]) -> list[str]:
    """One line per panel query naming a series not in `known` (empty when all are known)."""
    problems = []
    for panel, query in iter_queries(definition):
        unknown = series_used(query.expr) - known.keys()
        if unknown:
            problems.append(
                f"dashboard {definition.name!r}, panel {panel.title!r}: query uses "
                f"{sorted(unknown)}, which the pipeline does not produce (budgetwatch.spec)"
            )
    return problems
