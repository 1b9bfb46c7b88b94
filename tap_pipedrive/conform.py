"""Type conformance only where the data needs it.

The SDK conforms every value of every record to the schema, recursively: most of the
tap's CPU time. Records here come straight from JSON and the schemas are complete, so
nearly every value is already what the schema says. What is not: a boolean field that
API v1 sends as `0`/`1`. This module finds those fields once per schema and fixes only
them, which yields records identical to the SDK's conformance
(`tests/test_conform.py` checks it on every stream).
"""

from __future__ import annotations

import math
import typing as t

Path = tuple[str, ...]
ITEMS = "[]"


def _types(schema: dict[str, t.Any]) -> set[str]:
    kind = schema.get("type")
    return set(kind) if isinstance(kind, list) else {kind} if kind else set()


def _is_boolean_only(schema: dict[str, t.Any]) -> bool:
    """The SDK's `_is_exclusive_boolean_type`: boolean, or boolean and null."""
    return bool(_types(schema)) and _types(schema) <= {"boolean", "null"}


def boolean_paths(schema: dict[str, t.Any], prefix: Path = ()) -> list[Path]:
    """Paths to every boolean-only property, through objects and arrays of objects."""
    paths: list[Path] = []
    for name, prop in (schema.get("properties") or {}).items():
        path = (*prefix, name)
        if _is_boolean_only(prop):
            paths.append(path)
        types = _types(prop)
        if "object" in types and prop.get("properties"):
            paths += boolean_paths(prop, path)
        if "array" in types and isinstance(prop.get("items"), dict):
            items = prop["items"]
            if _is_boolean_only(items):
                paths.append((*path, ITEMS))
            if "object" in _types(items) and items.get("properties"):
                paths += boolean_paths(items, (*path, ITEMS))
    return paths


def _fix(container: t.Any, path: Path) -> None:
    if not path:
        return
    head, rest = path[0], path[1:]
    if head == ITEMS:
        if isinstance(container, list):
            if rest:
                for item in container:
                    _fix(item, rest)
            else:
                for index, item in enumerate(container):
                    if item is not None and not isinstance(item, bool):
                        container[index] = item != 0
        return
    if not isinstance(container, dict) or head not in container:
        return
    if rest:
        _fix(container[head], rest)
        return
    value = container[head]
    if value is not None and not isinstance(value, bool) and not isinstance(value, (dict, list)):
        container[head] = value != 0


class Conformer:
    """Conforms records of one schema: booleans sent as numbers, and NaN/infinity floats
    (which JSON cannot carry) made null, as the SDK does."""

    def __init__(self, schema: dict[str, t.Any]) -> None:
        self.paths = boolean_paths(schema)
        #: Top-level boolean fields, fixed inline: nearly all of them.
        self.boolean_keys = tuple(path[0] for path in self.paths if len(path) == 1)
        self.nested_paths = [path for path in self.paths if len(path) > 1]
        self.number_keys = tuple(
            name
            for name, prop in (schema.get("properties") or {}).items()
            if "number" in _types(prop)
        )

    def conform(self, record: dict[str, t.Any]) -> dict[str, t.Any]:
        for key in self.boolean_keys:
            value = record.get(key)
            if (
                value is not None
                and value.__class__ is not bool
                and not isinstance(value, (dict, list))
            ):
                record[key] = value != 0
        for path in self.nested_paths:
            _fix(record, path)
        for key in self.number_keys:
            value = record.get(key)
            if value.__class__ is float and (math.isnan(value) or math.isinf(value)):
                record[key] = None
        return record
