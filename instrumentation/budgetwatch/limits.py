"""The versioned limits file (`limits.yaml`): its schema, and loading it with clear errors.

Every error is a `LimitsError` whose text names the file, the line and column when known, the
field path (`revisions[1].agents.cto.daily`) and what is wrong. Nothing here imports the
runtime telemetry code: the generators and the CLI use this module, applications do not.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .spec import WindowName

API_VERSION = "budgetwatch/v1"
SUPPORTED_API_VERSIONS = (API_VERSION,)
KIND = "BudgetLimits"
# Far above any real organisation's limits file; stops a wrong path (a log, a dump) early.
MAX_FILE_BYTES = 1024 * 1024
MAX_AGENT_ID_LENGTH = 256

Window = WindowName  # a limits field per window of the bundle spec
PathPart = str | int

_NAMESPACE_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# A currency is a display label and the OTLP unit `{USD}`: no braces, quotes or spaces.
_CURRENCY_RE = re.compile(r"[^\s{}\"'`\\]{1,16}")
_RFC3339_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})?"
)
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


class LimitsError(Exception):
    """A limits file that cannot be used; str() names the file, the field path and the problem."""

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems: list[str] = list(problems) or [message]


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


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class AgentLimits(_Model):
    """One agent's limits (or the defaults). A key set to null means "no such limit"."""

    daily: float | None = None
    monthly: float | None = None

    @field_validator("daily", "monthly", mode="before")
    @classmethod
    def _check(cls, value: Any) -> Any:
        return _check_limit_value(value)

    def limit(self, window: Window) -> float | None:
        value: float | None = getattr(self, window)
        return value

    def sets(self, window: Window) -> bool:
        """Whether the file gave this window explicitly (a number or null)."""
        return window in self.model_fields_set


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

    def agent_limits(self, window: Window) -> dict[str, float | None]:
        """Every listed agent -> its limit for `window` (None = exempt; absent key = default)."""
        default = self.default_limit(window)
        return {
            agent_id: (limits.limit(window) if limits.sets(window) else default)
            for agent_id, limits in self.agents.items()
        }

    def default_limit(self, window: Window) -> float | None:
        return self.agent_defaults.limit(window)

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

    def revision_at(self, when: datetime) -> Revision | None:
        """The revision in force at `when` (the last one with effective_from <= when)."""
        current = None
        for revision in self.revisions:
            if revision.effective_from <= when:
                current = revision
        return current


def _num(value: float) -> str:
    return f"{value:g}"


# --------------------------------------------------------------------------- YAML loading


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and keeps timestamps as text.

    Timestamps stay strings so that a bad date is reported against its field, not as a crash
    inside the YAML parser, and so that a date without a timezone is caught. The pure-Python
    parser (not libyaml's CSafeLoader, ~6x faster) so that syntax errors read the same on
    every platform; a 2,000-agent, 3-revision file still validates in about 2 s.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _value in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    "found an unhashable key",
                    key_node.start_mark,
                ) from None
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first defined at line {first.start_mark.line + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def _timestamp_as_text(loader: _StrictLoader, node: yaml.Node) -> str:
    assert isinstance(node, yaml.ScalarNode)
    return str(loader.construct_scalar(node))


_StrictLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)


def _scalar_key_text(node: yaml.ScalarNode) -> str:
    loader = _StrictLoader("")
    try:
        return str(loader.construct_object(node))
    except yaml.YAMLError:
        return str(node.value)
    finally:
        loader.dispose()


def _positions(node: yaml.Node) -> dict[tuple[PathPart, ...], tuple[int, int]]:
    """Field path -> (line, column), 1-based, of each key and list item in the document."""
    found: dict[tuple[PathPart, ...], tuple[int, int]] = {}

    visited: set[int] = set()

    def walk(current: yaml.Node, path: tuple[PathPart, ...]) -> None:
        # An alias shares its anchor's node (possibly recursively): walk each node once.
        if id(current) in visited:
            return
        visited.add(id(current))
        if isinstance(current, yaml.MappingNode):
            for key_node, value_node in current.value:
                if isinstance(key_node, yaml.ScalarNode):
                    where = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                    child = (*path, key_node.value)
                    found.setdefault(child, where)
                    if key_node.tag != "tag:yaml.org,2002:str":
                        # `yes:` or `123:` reach the schema as True / 123: find them by that too.
                        found.setdefault((*path, _scalar_key_text(key_node)), where)
                    walk(value_node, child)
        elif isinstance(current, yaml.SequenceNode):
            for index, item in enumerate(current.value):
                child = (*path, index)
                found.setdefault(child, (item.start_mark.line + 1, item.start_mark.column + 1))
                walk(item, child)

    walk(node, ())
    return found


def format_path(path: Sequence[PathPart]) -> str:
    """`('revisions', 1, 'agents', 'cto', 'daily')` -> `revisions[1].agents.cto.daily`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENT_RE.fullmatch(part):
            out += f".{part}" if out else part
        else:
            # Agent ids with dots, spaces or quotes: unambiguous and visible, like a JSON key.
            out += f"[{json.dumps(part, ensure_ascii=False)}]"
    return out


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
    close = difflib.get_close_matches(loc[-1], names, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else f" (allowed: {', '.join(names)})"


def _compose(text: str, source: str) -> tuple[Any, yaml.Node | None]:
    """One YAML document -> (data, its node tree); LimitsError with line:column if bad."""
    if len(text.encode("utf-8")) > MAX_FILE_BYTES:
        raise LimitsError(f"{source}: file is larger than {MAX_FILE_BYTES} bytes")
    if not text.strip():
        raise LimitsError(f"{source}: file is empty")
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = err.problem or "invalid YAML"
        context = f" ({err.context})" if err.context and err.problem else ""
        if "expected a single document" in (err.context or ""):
            problem, context = "a second YAML document (---) is not allowed", ""
        raise LimitsError(f"{where}: YAML error: {problem}{context}") from None
    except yaml.YAMLError as err:
        raise LimitsError(f"{source}: YAML error: {err}") from None
    except RecursionError:
        raise LimitsError(f"{source}: YAML is nested too deeply") from None
    finally:
        loader.dispose()
    if data is None:
        raise LimitsError(f"{source}: file has no YAML document (only comments?)")
    return data, node


def load_yaml_document(text: str, source: str) -> Any:
    """Parse one YAML document the strict way (duplicate keys refused, dates kept as text)."""
    return _compose(text, source)[0]


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
