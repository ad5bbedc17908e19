"""Reading a limits file's YAML strictly: one document, no duplicate keys, dates kept as text,
and each node's line and column for the messages. Every failure is a `LimitsError`."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import yaml

from .limits_values import PathPart

_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
# Far above any real organisation's limits file; stops a wrong path (a log, a dump) early.
MAX_FILE_BYTES = 1024 * 1024


class LimitsError(Exception):
    """A limits file that cannot be used; str() names the file, the field path and the problem."""

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems: list[str] = list(problems) or [message]


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
