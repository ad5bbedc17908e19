"""The limits file's early-warning sections: `forecast`, `burn_rate` and `spike` (all optional,
with defaults). What each alert computes: docs/rules.md, "Early warning"."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .limits_values import _FieldProblem, _finite_number

_DURATION_RE = re.compile(r"([1-9][0-9]*)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_seconds(text: str) -> int:
    """Seconds of a duration as the limits file writes it (`30s`, `5m`, `1h`, `3d`)."""
    match = _DURATION_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r}")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def _duration(value: Any) -> str:
    if not isinstance(value, str) or _DURATION_RE.fullmatch(value) is None:
        raise ValueError(
            f"must be a duration: a whole number and one unit of s, m, h, d (e.g. 5m, 1h, 3d), "
            f"got {value!r}"
        )
    return value


def _positive(value: Any) -> float:
    number = _finite_number(value, "must be a number")
    if number <= 0:
        raise ValueError(f"must be greater than 0, got {value}")
    return number


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)


class Forecast(_Model):
    """Billing-period forecast: period-to-date + the trailing `rate_window`'s rate x time left."""

    rate_window: str = "1d"
    min_history: str = "1d"  # quiet until the period is this old
    for_: str = Field(default="1h", alias="for")

    @field_validator("rate_window", "min_history", "for_", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> str:
        return _duration(value)


class BurnPair(_Model):
    """One multiwindow burn-rate alert: both windows' burn rates at or above `factor`."""

    long: str
    short: str
    factor: float
    severity: Literal["warning", "critical"]

    @field_validator("long", "short", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> str:
        return _duration(value)

    @field_validator("factor", mode="before")
    @classmethod
    def _factor(cls, value: Any) -> float:
        return _positive(value)

    @field_validator("severity", mode="before")
    @classmethod
    def _severity(cls, value: Any) -> Any:
        if value not in ("warning", "critical"):
            raise ValueError(f"must be warning or critical, got {value!r}")
        return value

    @model_validator(mode="after")
    def _short_below_long(self) -> BurnPair:
        if duration_seconds(self.short) >= duration_seconds(self.long):
            raise _FieldProblem(
                ("short",), f"must be shorter than long ({self.long}), got {self.short}"
            )
        return self


DEFAULT_PAIRS = (
    BurnPair(long="1h", short="5m", factor=14.4, severity="critical"),
    BurnPair(long="6h", short="30m", factor=6, severity="critical"),
    BurnPair(long="3d", short="6h", factor=1, severity="warning"),
)


class BurnRate(_Model):
    """Multiwindow, multi-burn-rate alerts on the monthly budget (SRE workbook defaults)."""

    pairs: tuple[BurnPair, ...] = DEFAULT_PAIRS
    for_: str = Field(default="2m", alias="for")

    @field_validator("for_", mode="before")
    @classmethod
    def _for(cls, value: Any) -> str:
        return _duration(value)

    @field_validator("pairs", mode="before")
    @classmethod
    def _list(cls, value: Any) -> Any:
        if isinstance(value, list):
            if not value:
                raise ValueError("must list at least one pair (or leave burn_rate out)")
            return tuple(value)
        return value

    @model_validator(mode="after")
    def _distinct(self) -> BurnRate:
        seen: dict[tuple[str, str], int] = {}
        for index, pair in enumerate(self.pairs):
            key = (pair.long, pair.short)
            if key in seen:
                raise _FieldProblem(
                    ("pairs", index),
                    f"windows {pair.long}/{pair.short} repeat pairs[{seen[key]}]",
                )
            seen[key] = index
        return self

    def fastest_first(self) -> list[BurnPair]:
        return sorted(self.pairs, key=lambda p: duration_seconds(p.long))


class Spike(_Model):
    """Runaway agent: spend over `window` (as an hourly rate) >= `factor` x the agent's average
    hourly spend over the trailing `baseline`, and >= `min_hourly`."""

    window: str = "1h"
    baseline: str = "7d"
    # An agent with less history is compared with the history it has, in whole steps of this.
    min_history: str = "1d"
    factor: float = 10
    min_hourly: float = 1
    for_: str = Field(default="10m", alias="for")

    @field_validator("window", "baseline", "min_history", "for_", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> str:
        return _duration(value)

    @field_validator("factor", "min_hourly", mode="before")
    @classmethod
    def _numbers(cls, value: Any) -> float:
        return _positive(value)

    @model_validator(mode="after")
    def _steps(self) -> Spike:
        step, whole = duration_seconds(self.min_history), duration_seconds(self.baseline)
        if whole % step or not 1 <= whole // step <= 28:
            raise _FieldProblem(
                ("baseline",),
                f"must be 1 to 28 times min_history ({self.min_history}), got {self.baseline}",
            )
        return self

    @property
    def history_steps(self) -> int:
        return duration_seconds(self.baseline) // duration_seconds(self.min_history)
