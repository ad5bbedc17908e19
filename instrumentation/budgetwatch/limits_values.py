"""Checks of single values in a limits file (numbers, agent ids, currency, instants), shared
by the schema (limits.py) and the SynthOrg importer. Each raises ValueError (or returns the
problem) in the words the user sees."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

PathPart = str | int
MAX_AGENT_ID_LENGTH = 256

# A currency is a display label and the OTLP unit `{USD}`: no braces, quotes or spaces.
_CURRENCY_RE = re.compile(r"[^\s{}\"'`\\]{1,16}")
_RFC3339_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})?"
)


class _FieldProblem(ValueError):
    """A validator's complaint about a field below the one being validated."""

    def __init__(self, rel_path: tuple[PathPart, ...], message: str) -> None:
        super().__init__(message)
        self.rel_path = rel_path
        self.message = message


def _check_limit_value(value: Any) -> Any:
    """Numbers only: YAML booleans and quoted numbers are mistakes, not limits."""
    if value is None:
        return None
    number = _finite_number(value, "must be a number or null")
    if number <= 0:
        # A zero limit makes every percent infinite or undefined; null says "no limit".
        raise ValueError(f"must be greater than 0 (use null for no limit), got {value}")
    return number


def _finite_number(value: Any, wanted: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{wanted}, got {_describe(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise ValueError("must be a finite number, got a number too large") from None
    if not math.isfinite(number):
        raise ValueError(f"must be a finite number, got {value}")
    return number


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, str):
        # A pasted blob must not flood the terminal.
        return f"string {value[:40]!r}" + ("..." if len(value) > 40 else "")
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def check_agent_id(agent_id: object) -> str | None:
    """The problem with an agent id as a limits key, or None when it is fine.

    Quotes, backslashes and non-ASCII letters are fine (the rules escape them). Control
    characters and surrounding blanks are refused: they are invisible in a review and in
    Grafana, and never what someone meant.
    """
    if not isinstance(agent_id, str):
        return f"agent id must be a string, got {_describe(agent_id)} (quote it in YAML)"
    if agent_id == "":
        return "agent id must not be empty"
    if agent_id.startswith("_"):
        return (
            f"agent id {agent_id!r} must not start with '_' "
            "(reserved for _unassigned and _overflow)"
        )
    if agent_id != agent_id.strip():
        return f"agent id {agent_id!r} must not start or end with whitespace"
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in agent_id):
        return f"agent id {agent_id!r} must not contain control or format characters"
    if len(agent_id) > MAX_AGENT_ID_LENGTH:
        return f"agent id is longer than {MAX_AGENT_ID_LENGTH} characters"
    return None


def check_currency(value: str) -> str | None:
    """The problem with a currency label, or None. It becomes the OTLP unit `{USD}`."""
    if not _CURRENCY_RE.fullmatch(value) or any(
        unicodedata.category(ch).startswith("C") for ch in value
    ):
        return (
            "must be a currency code like USD or a short label (at most 16 characters, "
            f"no spaces, braces, quotes or backslashes), got {value!r}"
        )
    return None


def parse_effective_from(value: Any) -> datetime:
    """An RFC 3339 instant in UTC (`2026-11-01T00:00:00Z`), to the second; ValueError if not."""
    return _parse_effective_from(value)


def _parse_effective_from(value: Any) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        text = value.strip()
        if not _RFC3339_RE.fullmatch(text):
            raise ValueError(
                f"must be an RFC 3339 date and time in UTC like 2026-11-01T00:00:00Z, got {text!r}"
            )
        try:
            parsed = datetime.fromisoformat(text.upper().replace(" ", "T"))
        except ValueError as err:
            raise ValueError(f"is not a valid date and time: {err}") from None
    else:
        raise ValueError(
            "must be an RFC 3339 date and time in UTC like 2026-11-01T00:00:00Z, "
            f"got {_describe(value)}"
        )
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(
            f"must say its timezone, in UTC: write {parsed.strftime('%Y-%m-%dT%H:%M:%S')}Z"
        )
    if parsed.utcoffset() != UTC.utcoffset(None):
        # Budget windows are UTC: the file says the instant the way Prometheus will use it.
        utc = parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        raise ValueError(f"must be in UTC (Z): this instant is {utc}")
    if parsed.microsecond:
        raise ValueError("must be a whole second (the rules switch revisions to the second)")
    return parsed.astimezone(UTC)
