"""Safe building blocks for generated PromQL: string literals, numbers, constant series.

Agent ids come from a person's YAML file and end up inside PromQL strings, so every value goes
through `string_literal` (and `label_replace` replacements through `replacement_literal`).
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence

# PromQL's lexer accepts Go escapes; these are the ones with a short form.
_SHORT_ESCAPES = {
    "\\": "\\\\",
    '"': '\\"',
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def string_literal(value: str) -> str:
    """`value` as a double-quoted PromQL string that parses back to exactly `value`.

    Quotes and backslashes are escaped; control and other invisible characters become
    `\\uXXXX` (a raw newline would end the string); other non-ASCII text stays as UTF-8.
    """
    out = ['"']
    for ch in value:
        if ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        elif unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            code = ord(ch)
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def replacement_literal(value: str) -> str:
    """A `label_replace` replacement that yields `value` literally (`$` would expand groups)."""
    return string_literal(value.replace("$", "$$"))


def number(value: float) -> str:
    """A finite number as a PromQL literal, shortest exact form (`20`, `0.5`, `1e-05`)."""
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {value!r}")
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def constant(value: float, label: str, label_value: str) -> str:
    """A one-series vector `{label="label_value"} value`, built from stock functions only."""
    return (
        f"label_replace(vector({number(value)}), {string_literal(label)}, "
        f'{replacement_literal(label_value)}, "", "")'
    )


def any_of(terms: Sequence[str]) -> str:
    """`t1 or t2 or ...` as a balanced tree: n terms cost O(n log n), not O(n^2), to evaluate."""
    if not terms:
        raise ValueError("any_of needs at least one term")
    if len(terms) == 1:
        return terms[0]
    middle = len(terms) // 2
    return f"({any_of(terms[:middle])} or {any_of(terms[middle:])})"


def indent(text: str, spaces: int) -> str:
    """Every line of `text` indented: nested expressions stay readable in the rule files."""
    pad = " " * spaces
    return "\n".join(pad + line for line in text.splitlines())
