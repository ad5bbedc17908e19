"""The limits file's per-task and coverage sections: `task_limit` and `coverage` (both optional,
with defaults). The per-task limit itself sits beside `daily`/`monthly` in each revision."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .limits_early_warning import _duration
from .limits_values import _finite_number


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)


class TaskLimit(_Model):
    """The over-limit task alert fires when an agent finishes more over-limit tasks than
    `max_over_limit_per_hour` within an hour."""

    max_over_limit_per_hour: float = 0

    @field_validator("max_over_limit_per_hour", mode="before")
    @classmethod
    def _count(cls, value: Any) -> float:
        number = _finite_number(value, "must be a number of tasks")
        if number < 0:
            raise ValueError(f"must be 0 or more, got {value}")
        return number


class Coverage(_Model):
    """The coverage alert fires when less than `min_percent` % of an agent's calls are priced
    for `for`."""

    min_percent: float = 95
    for_: str = Field(default="15m", alias="for")

    @field_validator("min_percent", mode="before")
    @classmethod
    def _percent(cls, value: Any) -> float:
        number = _finite_number(value, "must be a number")
        if not 0 < number <= 100:
            raise ValueError(f"must be a percentage greater than 0 and at most 100, got {value}")
        return number

    @field_validator("for_", mode="before")
    @classmethod
    def _for(cls, value: Any) -> str:
        return _duration(value)

    @property
    def min_ratio(self) -> float:
        """`min_percent` as the coverage ratio series counts it (0-1)."""
        return self.min_percent / 100
