"""Turning what the application passes into bounded, printable attribute values.

Everything here runs on the slow path only (a value seen for the first time); the hot path
looks results up in caches kept by the store.
"""

from __future__ import annotations

from enum import Enum
from typing import Final

# Reserved attribute values. Agent ids from the application never start with "_" once
# cleaned (see `clean_agent_id`), so these cannot collide with a real agent.
UNASSIGNED: Final = "_unassigned"
OVERFLOW: Final = "_overflow"
UNKNOWN: Final = "_unknown"

# Long enough for UUIDs, model names with dates and paths; short enough that a pasted
# prompt or stack trace cannot become a label value.
MAX_VALUE_LENGTH: Final = 128

# Prefix given to application agent ids that start with "_" (reserved for budgetwatch):
# "_cto" is reported as "app_cto", which stays distinct and is a valid limits.yaml key.
RESERVED_PREFIX_ESCAPE: Final = "app"


def as_text(value: object) -> str | None:
    """The string behind `value` (a str, or an Enum whose value is a str); None otherwise."""
    if isinstance(value, str):
        return value if type(value) is str else str.__str__(value)
    if isinstance(value, Enum) and isinstance(value.value, str):
        return str.__str__(value.value)
    return None


def clean(text: str) -> str:
    """Strip control (non-printable) characters and surrounding blanks, trim the length."""
    if not text.isprintable():
        text = "".join(ch for ch in text if ch.isprintable())
    text = text.strip()
    if len(text) > MAX_VALUE_LENGTH:
        text = text[:MAX_VALUE_LENGTH].rstrip()
    return text


def clean_agent_id(text: str) -> str:
    """A cleaned agent id ("" for blank) that never starts with the reserved "_"."""
    cleaned = clean(text)
    if cleaned.startswith("_"):
        cleaned = (RESERVED_PREFIX_ESCAPE + cleaned)[:MAX_VALUE_LENGTH]
    return cleaned
