"""The versioned limits file (`limits.yaml`): its schema, and loading it with clear errors
(strict YAML reading in limits_yaml.py, single-value checks in limits_values.py).

Every error is a `LimitsError` whose text names the file, the line and column when known, the
field path (`revisions[1].agents.cto.daily`) and what is wrong. Nothing here imports the
runtime telemetry code: the generators and the CLI use this module, applications do not.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .limits_early_warning import BurnRate, Forecast, Spike
from .limits_tasks import Coverage, TaskLimit
from .limits_values import (
    MAX_AGENT_ID_LENGTH,
    PathPart,
    _check_limit_value,
    _describe,
    _FieldProblem,
    _finite_number,
    _parse_effective_from,
    check_agent_id,
    check_currency,
    parse_effective_from,
)
from .limits_yaml import (
    MAX_FILE_BYTES,
    LimitsError,
    _compose,
    _positions,
    format_path,
    load_yaml_document,
)
from .spec import PER_TASK_FIELD, WINDOW_NAMES, WindowName

API_VERSION = "budgetwatch/v1"
SUPPORTED_API_VERSIONS = (API_VERSION,)
KIND = "BudgetLimits"

Window = WindowName  # a limits field per window of the bundle spec
# A field of an agent's limits: a window's name or PER_TASK_FIELD (a str: Literal[] cannot
# take the spec's constant).
LimitField = str
AGENT_LIMIT_FIELDS: tuple[LimitField, ...] = (*WINDOW_NAMES, PER_TASK_FIELD)

_NAMESPACE_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class AgentLimits(_Model):
    """One agent's limits (or the defaults). A key set to null means "no such limit"."""

    daily: float | None = None
    monthly: float | None = None
    # The cost of one task (from its first cost record to its terminal status); the file's
    # key is PER_TASK_FIELD.
    task: float | None = Field(default=None, alias=PER_TASK_FIELD)

    @field_validator("daily", "monthly", "task", mode="before")
    @classmethod
    def _check(cls, value: Any) -> Any:
        return _check_limit_value(value)

    @classmethod
    def _attribute(cls, field: LimitField) -> str:
        for name, info in cls.model_fields.items():
            if (info.alias or name) == field:
                return name
        raise ValueError(f"not an agent limits field: {field!r}")

    def limit(self, field: LimitField) -> float | None:
        value: float | None = getattr(self, self._attribute(field))
        return value

    def sets(self, field: LimitField) -> bool:
        """Whether the file gave this field explicitly (a number or null)."""
        return self._attribute(field) in self.model_fields_set


class OrgLimits(_Model):
    """The organisation's limits. `daily` None = `monthly` prorated over the billing period."""

    monthly: float | None = None
    daily: float | None = None

    @field_validator("daily", "monthly", mode="before")
    @classmethod
    def _check(cls, value: Any) -> Any:
        return _check_limit_value(value)

    def limit(self, window: Window) -> float | None:
        value: float | None = getattr(self, window)
        return value


class Revision(_Model):
    """A complete set of limits, in force from `effective_from` until the next revision."""

    revision: int = Field(ge=1)
    effective_from: datetime
    org: OrgLimits = OrgLimits()
    agent_defaults: AgentLimits = AgentLimits()
    agents: dict[str, AgentLimits] = {}

    @field_validator("effective_from", mode="before")
    @classmethod
    def _effective_from(cls, value: Any) -> datetime:
        return _parse_effective_from(value)

    @field_validator("org", "agent_defaults", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        # `org:` with every line commented out is YAML null: the same as no limits.
        return {} if value is None else value

    @field_validator("agents", mode="before")
    @classmethod
    def _agent_ids(cls, value: Any) -> Any:
        if value is None:
            return {}
        if isinstance(value, Mapping):
            for key in value:
                problem = check_agent_id(key)
                if problem:
                    raise _FieldProblem((key if isinstance(key, str) else str(key),), problem)
        return value

    def agent_limits(self, field: LimitField) -> dict[str, float | None]:
        """Every listed agent -> its limit `field` (a window's name or PER_TASK_FIELD);
        None = exempt; an agent that does not set the field gets the default."""
        default = self.default_limit(field)
        return {
            agent_id: (limits.limit(field) if limits.sets(field) else default)
            for agent_id, limits in self.agents.items()
        }

    def default_limit(self, field: LimitField) -> float | None:
        return self.agent_defaults.limit(field)

    @property
    def effective_from_text(self) -> str:
        return self.effective_from.strftime("%Y-%m-%dT%H:%M:%SZ")


class Thresholds(_Model):
    """Percent of a limit at which each alert level fires; strictly increasing."""

    warning: float = 75
    critical: float = 90
    exhausted: float = 100

    @field_validator("warning", "critical", "exhausted", mode="before")
    @classmethod
    def _number(cls, value: Any) -> float:
        number = _finite_number(value, "must be a number")
        if number <= 0:
            raise ValueError(f"must be a percentage greater than 0, got {value}")
        return number

    @model_validator(mode="after")
    def _increasing(self) -> Thresholds:
        if not self.warning < self.critical:
            raise _FieldProblem(
                ("critical",),
                f"must be greater than warning ({_num(self.warning)}), got {_num(self.critical)}",
            )
        if not self.critical < self.exhausted:
            raise _FieldProblem(
                ("exhausted",),
                f"must be greater than critical ({_num(self.critical)}), "
                f"got {_num(self.exhausted)}",
            )
        return self


class Billing(_Model):
    reset_day: int = Field(default=1, ge=1, le=28)


class Limits(_Model):
    """The whole limits file."""

    model_config = ConfigDict(populate_by_name=True)

    api_version: Literal["budgetwatch/v1"] = Field(alias="apiVersion")
    kind: Literal["BudgetLimits"]
    namespace: str = "synthorg"
    currency: str = "USD"
    billing: Billing = Billing()
    thresholds: Thresholds = Thresholds()
    # early warning (docs/limits.md): optional, with defaults
    forecast: Forecast = Forecast()
    burn_rate: BurnRate = BurnRate()
    spike: Spike = Spike()
    # per-task cost and coverage alerts (docs/limits.md): optional, with defaults
    task_limit: TaskLimit = TaskLimit()
    coverage: Coverage = Coverage()
    revisions: list[Revision]

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if not _NAMESPACE_RE.fullmatch(value) or value.startswith("__"):
            raise ValueError(
                f"must be a Prometheus metric name prefix ([a-zA-Z_][a-zA-Z0-9_]*, "
                f"not starting with __), got {value!r}"
            )
        return value

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        problem = check_currency(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("revisions")
    @classmethod
    def _ordered(cls, revisions: list[Revision]) -> list[Revision]:
        if not revisions:
            raise ValueError("must list at least one revision")
        for index in range(1, len(revisions)):
            prev, cur = revisions[index - 1], revisions[index]
            if cur.revision == prev.revision:
                raise _FieldProblem(
                    (index, "revision"),
                    f"revision {cur.revision} is duplicated (also revisions[{index - 1}])",
                )
            if cur.revision < prev.revision:
                raise _FieldProblem(
                    (index, "revision"),
                    f"must be greater than the previous revision ({prev.revision}), "
                    f"got {cur.revision}",
                )
            if cur.effective_from == prev.effective_from:
                raise _FieldProblem(
                    (index, "effective_from"),
                    f"{cur.effective_from_text} is duplicated (also revisions[{index - 1}])",
                )
            if cur.effective_from < prev.effective_from:
                raise _FieldProblem(
                    (index, "effective_from"),
                    f"must be later than the previous revision's ({prev.effective_from_text}), "
                    f"got {cur.effective_from_text}",
                )
        return revisions

    @property
    def alert_prefix(self) -> str:
        """The namespace with a capital first letter, as in alert names: `Synthorg`."""
        return self.namespace[:1].upper() + self.namespace[1:]

    def per_task_values(self) -> tuple[float, ...]:
        """Every distinct per-task limit (defaults and agents, all revisions), ascending: the
        bounds the rules count over-limit tasks under."""
        found = {
            value
            for revision in self.revisions
            for value in (
                revision.default_limit(PER_TASK_FIELD),
                *revision.agent_limits(PER_TASK_FIELD).values(),
            )
            if value is not None
        }
        return tuple(sorted(found))

    def revision_at(self, when: datetime) -> Revision | None:
        """The revision in force at `when` (the last one with effective_from <= when)."""
        current = None
        for revision in self.revisions:
            if revision.effective_from <= when:
                current = revision
        return current


def _num(value: float) -> str:
    return f"{value:g}"


def _problem_text(error: Mapping[str, Any]) -> tuple[tuple[PathPart, ...], str]:
    """A pydantic error -> (field path, plain-words problem)."""
    loc: tuple[PathPart, ...] = tuple(
        part for part in error["loc"] if not (isinstance(part, str) and part.startswith("["))
    )
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    cause = ctx.get("error")
    if isinstance(cause, _FieldProblem):
        return (*loc, *cause.rel_path), cause.message
    if isinstance(cause, BaseException):
        return loc, str(cause)
    if kind == "invalid_key":
        # `1: x` or `yes: x` where a field name belongs.
        where = (*loc[:-1], str(loc[-1])) if loc else loc
        return where, f"key {value!r} is not a field name (quote it, or remove it)"
    if kind == "extra_forbidden":
        return loc, "unknown field" + _did_you_mean(loc)
    if kind == "missing":
        return loc, "required field is missing"
    if kind in ("int_type", "int_from_float", "int_parsing"):
        return loc, f"must be an integer, got {_describe(value)}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return loc, f"must be a mapping, got {_describe(value)}"
    if kind == "list_type":
        return loc, f"must be a list, got {_describe(value)}"
    if kind == "string_type":
        return loc, f"must be a string, got {_describe(value)}"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        if loc and loc[-1] == "reset_day":
            return loc, f"must be a day of the month from 1 to 28, got {value!r}"
        bound = {
            "greater_than_equal": ">=",
            "less_than_equal": "<=",
            "greater_than": ">",
            "less_than": "<",
        }[kind]
        limit = next(iter(ctx.values()), "?")
        return loc, f"must be {bound} {limit}, got {value!r}"
    if kind == "literal_error" and loc == ("kind",):
        return loc, f"unsupported kind {value!r} (expected {KIND})"
    return loc, str(error["msg"])


def _model_at(path: Sequence[PathPart]) -> type[BaseModel] | None:
    """The schema model that holds the fields found at `path`, if any."""
    model: type[BaseModel] | None = Limits
    parts = list(path)
    while parts and model is not None:
        part = parts.pop(0)
        if model is Limits and part == "revisions":
            if not parts or not isinstance(parts.pop(0), int):
                return None
            model = Revision
        elif model is Revision and part == "agents":
            if not parts:
                return None  # the keys here are agent ids, not fields
            parts.pop(0)
            model = AgentLimits
        else:
            field = model.model_fields.get(str(part))
            annotation = field.annotation if field else None
            is_model = isinstance(annotation, type) and issubclass(annotation, BaseModel)
            model = annotation if is_model else None  # type: ignore[assignment]
    return model


def _did_you_mean(loc: tuple[PathPart, ...]) -> str:
    """A hint for a misspelt key, from the fields allowed at that place."""
    if not loc or not isinstance(loc[-1], str):
        return ""
    model = _model_at(loc[:-1])
    if model is None:
        return ""
    names = [f.alias or name for name, f in model.model_fields.items()]
    close = difflib.get_close_matches(loc[-1], names, n=1, cutoff=0.7)
    return f" (did you mean {close[0]!r}?)" if close else f" (allowed: {', '.join(names)})"


def parse_limits(text: str, source: str) -> Limits:
    """Parse and validate a limits document; `source` is the file name used in messages."""
    data, node = _compose(text, source)
    if not isinstance(data, dict):
        raise LimitsError(
            f"{source}: the top level must be a mapping (apiVersion, kind, ...), "
            f"got {_describe(data)}"
        )
    assert node is not None
    positions = _positions(node)

    def located(path: tuple[PathPart, ...], message: str) -> str:
        probe = path
        while probe and probe not in positions:
            probe = probe[:-1]
        where = f"{source}:{positions[probe][0]}:{positions[probe][1]}" if probe else source
        return f"{where}: {format_path(path)}: {message}" if path else f"{where}: {message}"

    # The version decides the schema: refuse an unknown one before judging anything else.
    version = data.get("apiVersion")
    if version is None:
        raise LimitsError(
            located(("apiVersion",), f"required field is missing (use apiVersion: {API_VERSION})")
        )
    if version not in SUPPORTED_API_VERSIONS:
        raise LimitsError(
            located(
                ("apiVersion",),
                f"unsupported apiVersion {version!r} "
                f"(supported: {', '.join(SUPPORTED_API_VERSIONS)})",
            )
        )
    try:
        return Limits.model_validate(data)
    except ValidationError as err:
        found = [_problem_text(e) for e in err.errors()]
        # In file order, so the first line printed is the first thing to fix.
        found.sort(key=lambda item: _sort_key(item[0], positions))
        problems = [located(path, message) for path, message in found]
        message = problems[0] if len(problems) == 1 else "\n".join(problems)
        raise LimitsError(message, problems) from None


def _sort_key(
    path: tuple[PathPart, ...], positions: Mapping[tuple[PathPart, ...], tuple[int, int]]
) -> tuple[int, int]:
    probe = path
    while probe and probe not in positions:
        probe = probe[:-1]
    return positions.get(probe, (0, 0)) if probe else (0, 0)


def read_limits_text(path: str | Path) -> str:
    """The text of a limits file, refusing huge, binary or unreadable files by name."""
    path = Path(path)
    name = str(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise LimitsError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise LimitsError(f"{name}: is a directory, not a limits file") from None
    except OSError as err:
        raise LimitsError(f"{name}: cannot read: {err.strerror or err}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise LimitsError(f"{name}: file is larger than {MAX_FILE_BYTES} bytes")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise LimitsError(f"{name}: not UTF-8 text (byte {err.start})") from None


def load_limits(path: str | Path) -> Limits:
    """Read and validate a limits file; raises LimitsError naming the file as given."""
    return parse_limits(read_limits_text(path), str(path))


__all__ = [
    "AGENT_LIMIT_FIELDS",
    "API_VERSION",
    "KIND",
    "MAX_AGENT_ID_LENGTH",
    "MAX_FILE_BYTES",
    "SUPPORTED_API_VERSIONS",
    "AgentLimits",
    "Billing",
    "Coverage",
    "LimitField",
    "Limits",
    "LimitsError",
    "OrgLimits",
    "PathPart",
    "Revision",
    "TaskLimit",
    "Thresholds",
    "Window",
    "check_agent_id",
    "check_currency",
    "format_path",
    "load_limits",
    "load_yaml_document",
    "parse_effective_from",
    "parse_limits",
    "read_limits_text",
]
