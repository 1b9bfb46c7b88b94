#!/usr/bin/env python3
"""Generate the tap's JSON Schemas from Pipedrive's OpenAPI specs (dev-time only).

Usage (from the repo root; needs PyYAML, which is not a dependency of the tap: the
``.venv`` that ``make`` builds has it through Meltano, elsewhere ``pip install pyyaml``)::

    .venv/bin/python scripts/generate_schemas.py --specs DIR

``DIR`` holds Pipedrive's public OpenAPI specs saved as ``openapi-v1.yaml`` and
``openapi-v2.yaml``: download them from Pipedrive's API reference,
https://developers.pipedrive.com/docs/api/v1 (the v2 spec is
https://developers.pipedrive.com/docs/api/v1/openapi-v2.yaml). Without ``--specs`` the
script looks in ``../shared/pipedrive-api`` next to the repo, which a clone does not have.
The output is committed: the tap never reads the specs at build, test or run time.

Writes:

* ``tap_pipedrive/schemas/<stream>.json``: one JSON Schema per stream, built from
  the GET list operation's 200 response (``data`` -> ``items`` -> ``properties``,
  with ``$ref``/``allOf`` resolved), extended with every key of the response
  example record(s) and, for v2, every value of the ``include_fields`` enum.
* ``tap_pipedrive/schemas/_token_costs.json``: the ``x-token-cost`` of each
  stream's GET operation, per API version and exact spec path.

Every property is nullable; objects allow additional properties; strings whose
example (or, without a usable example, format/description) is a timestamp get
``format: date-time``; ``YYYY-MM-DD`` strings get ``format: date``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
SCHEMA_DIR = REPO_ROOT / "tap_pipedrive" / "schemas"
DEFAULT_SPECS = REPO_ROOT.parent / "shared" / "pipedrive-api"

# stream name -> (spec version, GET path, path to the record list inside the body)
#: A field the spec leaves untyped: any JSON value. Spelled out rather than `{}`, which
#: the SDK's type helpers reject.
ANY_TYPE = {"type": ["string", "number", "boolean", "object", "array", "null"]}

#: v2 entities that have custom fields (their `*Fields` endpoint lists some), whether or not
#: the spec's response schema shows `custom_fields` (v2 activities' does not).
V2_CUSTOM_FIELD_STREAMS = {
    "deals", "archived_deals", "persons", "organizations", "products", "activities"
}  # fmt: skip

STREAMS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # v2: Pipedrive retired the v1 list endpoints of these entities.
    "deals": ("v2", "/deals", ("data",)),
    "persons": ("v2", "/persons", ("data",)),
    "organizations": ("v2", "/organizations", ("data",)),
    "activities": ("v2", "/activities", ("data",)),
    "products": ("v2", "/products", ("data",)),
    "pipelines": ("v2", "/pipelines", ("data",)),
    "stages": ("v2", "/stages", ("data",)),
    "archived_deals": ("v2", "/deals/archived", ("data",)),
    "deal_products": ("v2", "/deals/products", ("data",)),
    "projects": ("v2", "/projects", ("data",)),
    "archived_projects": ("v2", "/projects/archived", ("data",)),
    "tasks": ("v2", "/tasks", ("data",)),
    "project_fields": ("v2", "/projectFields", ("data",)),
    "project_boards": ("v2", "/boards", ("data",)),
    "project_phases": ("v2", "/phases", ("data",)),
    "project_templates": ("v2", "/projectTemplates", ("data",)),
    # v1
    "notes": ("v1", "/notes", ("data",)),
    "leads": ("v1", "/leads", ("data",)),
    "archived_leads": ("v1", "/leads/archived", ("data",)),
    "users": ("v1", "/users", ("data",)),
    "activity_types": ("v1", "/activityTypes", ("data",)),
    "currencies": ("v1", "/currencies", ("data",)),
    "filters": ("v1", "/filters", ("data",)),
    "files": ("v1", "/files", ("data",)),
    "lead_labels": ("v1", "/leadLabels", ("data",)),
    "roles": ("v1", "/roles", ("data",)),
    "permission_sets": ("v1", "/permissionSets", ("data",)),
    "goals": ("v1", "/goals/find", ("data", "goals")),
    "call_logs": ("v1", "/callLogs", ("data",)),
    "note_fields": ("v1", "/noteFields", ("data",)),
    "mail_threads": ("v1", "/mailbox/mailThreads", ("data",)),
    "deal_participants": ("v1", "/deals/{id}/participants", ("data",)),
    "deal_flow": ("v1", "/deals/{id}/flow", ("data",)),
    "mail_messages": ("v1", "/mailbox/mailThreads/{id}/mailMessages", ("data",)),
    # Field definitions: v1 (the v1 spec still has the `*Fields` endpoints).
    "deal_fields": ("v1", "/dealFields", ("data",)),
    "person_fields": ("v1", "/personFields", ("data",)),
    "organization_fields": ("v1", "/organizationFields", ("data",)),
    "product_fields": ("v1", "/productFields", ("data",)),
    "activity_fields": ("v1", "/activityFields", ("data",)),
}

# Paths whose token cost is recorded although no stream reads them today: the v2
# twins of the v1 field-definition endpoints (an alternative the tap may switch to).
EXTRA_COST_PATHS: dict[str, list[str]] = {
    "v1": ["/recents"],
    "v2": [
        "/dealFields",
        "/personFields",
        "/organizationFields",
        "/productFields",
        "/activityFields",
    ],
}

# Free-form objects: polymorphic, or keyed by account-specific hashes. Their
# example contents must not be turned into properties.
FREE_OBJECTS: dict[str, set[str]] = {
    "deal_flow": {"data"},
}

# Streams whose records have no `id`: deal_flow is keyed by (deal_id, object, item_id), which
# the tap builds; project_fields by `field_code`.
NO_ID_STREAMS = {"deal_flow", "project_fields"}

# Columns the tap adds to records of child streams (the parent's id, a key part).
ADDED_BY_TAP: dict[str, dict[str, dict[str, Any]]] = {
    "deal_participants": {"deal_id": {"type": ["integer", "null"], "description": "The deal"}},
    "deal_flow": {
        "deal_id": {"type": ["integer", "null"], "description": "The deal"},
        "item_id": {
            "type": ["integer", "string", "null"],
            "description": "The id of the changed item (`data.id`), part of the key",
        },
    },
}

DATETIME_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$"
)
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DESC_DATETIME_RE = re.compile(
    r"date and time|datetime|date-time|timestamp|YYYY-MM-DD[ T]HH|RFC ?3339|ISO ?8601",
    re.IGNORECASE,
)
DESC_DATE_RE = re.compile(r"YYYY-MM-DD(?![ T]HH)")
PLAN_NOTE_RE = re.compile(r"only available in", re.IGNORECASE)
TAG_RE = re.compile(r"<[^>]+>")
SENTENCE_END_RE = re.compile(r"(?<!e\.g)(?<!i\.e)(?<!etc)\.(\s|$)")
MAX_DESCRIPTION = 200

JSON_TYPES = {"string", "integer", "number", "boolean", "object", "array"}


class Spec:
    """An OpenAPI document with ``$ref`` / ``allOf`` resolution."""

    def __init__(self, path: Path) -> None:
        with path.open(encoding="utf-8") as fh:
            self.doc: dict[str, Any] = yaml.safe_load(fh)

    def deref(self, node: Any) -> Any:
        seen = 0
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            if not ref.startswith("#/"):
                raise ValueError(f"external $ref not supported: {ref}")
            target: Any = self.doc
            for part in ref[2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = target
            seen += 1
            if seen > 50:
                raise ValueError(f"$ref loop at {ref}")
        return node

    def flatten(self, node: Any) -> dict[str, Any]:
        """Resolve ``$ref`` and merge ``allOf`` into one schema dict (order kept)."""
        node = self.deref(node)
        if not isinstance(node, dict):
            return {}
        if "allOf" not in node:
            return node
        merged: dict[str, Any] = {}
        props: dict[str, Any] = {}
        for part in node["allOf"]:
            sub = self.flatten(part)
            for key, value in sub.items():
                if key == "properties":
                    props.update(value)
                elif key not in merged:
                    merged[key] = value
        for key, value in node.items():
            if key == "properties":
                props.update(value)
            elif key != "allOf":
                merged[key] = value
        if props:
            merged["properties"] = props
            merged.setdefault("type", "object")
        return merged


def short_description(text: Any) -> str | None:
    if not isinstance(text, str):
        return None
    lines = [" ".join(TAG_RE.sub(" ", line).split()) for line in text.splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return None
    text = lines[0]
    if PLAN_NOTE_RE.match(text) and len(lines) > 1:
        # "Only available in Growth and above plans\n\nThe ARR of the deal ..."
        text = f"{lines[1].rstrip('.')} ({text[0].lower()}{text[1:].rstrip('.')})."
    match = SENTENCE_END_RE.search(text)
    if match:
        text = text[: match.start() + 1]
    if len(text) > MAX_DESCRIPTION:
        text = text[: MAX_DESCRIPTION - 3].rstrip() + "..."
    return text


def nullable(types: list[str]) -> list[str]:
    out = [t for t in types if t != "null"]
    return [*out, "null"]


def string_format(example: Any, spec_format: Any, description: str | None) -> str | None:
    """Decide ``date-time`` / ``date`` / nothing for a string property."""
    if isinstance(example, str) and example.strip():
        if DATETIME_RE.match(example):
            return "date-time"
        if DATE_RE.match(example):
            return "date"
        return None  # the example wins over format and description
    if spec_format in ("date-time", "date"):
        return spec_format
    desc = description or ""
    if DESC_DATETIME_RE.search(desc):
        return "date-time"
    if DESC_DATE_RE.search(desc):
        return "date"
    return None


def example_type(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return None


def infer_type(values: list[Any]) -> str | list[str] | None:
    """The JSON type of example values: one type, a scalar union, or None (any)."""
    types: list[str] = []
    for value in values:
        t = example_type(value)
        if t and t not in types:
            types.append(t)
    if set(types) == {"integer", "number"}:
        return "number"
    if len(types) == 1:
        return types[0]
    if not types or {"object", "array"} & set(types):
        return None
    return types


class Converter:
    def __init__(self, spec: Spec, stream: str) -> None:
        self.spec = spec
        self.stream = stream
        self.formats: dict[str, str] = {}

    def convert(self, node: Any, examples: list[Any], name: str, path: str) -> dict[str, Any]:
        node = self.spec.flatten(node)
        description = short_description(node.get("description"))
        examples = list(examples)
        if "example" in node and node["example"] is not None:
            examples.append(node["example"])

        out = self._convert_type(node, examples, name, path)
        if description:
            out = {"description": description, **out}
        return out

    def _convert_type(
        self, node: dict[str, Any], examples: list[Any], name: str, path: str
    ) -> dict[str, Any]:
        spec_type = node.get("type")
        from_example = False
        if spec_type not in JSON_TYPES:
            if "properties" in node:
                spec_type = "object"
            elif "items" in node:
                spec_type = "array"
            elif "oneOf" in node or "anyOf" in node:
                return self._convert_union(node, examples, name, path)
            else:
                inferred = infer_type(examples)
                if inferred is None:
                    return dict(ANY_TYPE)
                if isinstance(inferred, list):
                    return {"type": nullable(inferred)}
                spec_type = inferred
                from_example = True

        if spec_type == "object":
            # A spec object without properties stays free-form (its examples
            # may be polymorphic); an object known only from examples is
            # described by them.
            free = ("properties" not in node and not from_example) or (
                name in FREE_OBJECTS.get(self.stream, set())
            )
            if path.count(".") == 0 and name == "custom_fields":
                free = True
            dict_examples = [e for e in examples if isinstance(e, dict)]
            props: dict[str, Any] = {}
            if not free:
                for key, sub in node.get("properties", {}).items():
                    sub_ex = [e[key] for e in dict_examples if key in e]
                    props[key] = self.convert(sub, sub_ex, key, f"{path}.{key}")
                for ex in dict_examples:
                    for key in ex:
                        if key not in props:
                            sub_ex = [e[key] for e in dict_examples if key in e]
                            props[key] = self.convert({}, sub_ex, key, f"{path}.{key}")
            out: dict[str, Any] = {"type": ["object", "null"]}
            if props:
                out["properties"] = props
            out["additionalProperties"] = True
            return out

        if spec_type == "array":
            item_examples = [i for e in examples if isinstance(e, list) for i in e]
            items = node.get("items")
            item = self.convert(items or {}, item_examples, name, f"{path}[]")
            item.pop("description", None)
            return {"type": ["array", "null"], "items": item}

        out = {"type": nullable([spec_type])}
        if spec_type == "string":
            example = next((e for e in examples if isinstance(e, str) and e.strip()), None)
            fmt = string_format(
                example,
                node.get("format"),
                short_description(node.get("description")),
            )
            if fmt:
                out["format"] = fmt
                self.formats[path] = fmt
        return out

    def _convert_union(
        self, node: dict[str, Any], examples: list[Any], name: str, path: str
    ) -> dict[str, Any]:
        variants = [self.spec.flatten(v) for v in node.get("oneOf", node.get("anyOf"))]
        types: list[str] = []
        for variant in variants:
            t = variant.get("type")
            if t not in JSON_TYPES or t in ("object", "array"):
                return dict(ANY_TYPE)
            if t not in types:
                types.append(t)
        if len(types) == 1:
            return self._convert_type(variants[0], examples, name, path)
        return {"type": nullable(types)}


def include_field_schema(name: str) -> dict[str, Any]:
    """Type of a v2 ``include_fields`` value: the spec gives only the name."""
    if name.endswith("_count"):
        return {"type": ["integer", "null"]}
    if name.endswith("_id"):
        return {"type": ["integer", "null"]}
    if name.endswith("_time"):
        return {"type": ["string", "null"], "format": "date-time"}
    if name in ("smart_bcc_email", "marketing_status", "doi_status"):
        return {"type": ["string", "null"]}
    return dict(ANY_TYPE)


def response_of(spec: Spec, path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        op = spec.doc["paths"][path]["get"]
    except KeyError:
        raise SystemExit(f"GET {path} not found in spec") from None
    resp = spec.deref(op["responses"]["200"])
    content = resp["content"]["application/json"]
    return op, content


def record_examples(content: dict[str, Any], record_path: tuple[str, ...]) -> list[Any]:
    example = content.get("example")
    if example is None and "examples" in content:
        example = [e.get("value") for e in content["examples"].values() if isinstance(e, dict)]
        examples = example
    else:
        examples = [example]
    out: list[Any] = []
    for ex in examples:
        node = ex
        for key in record_path:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, list):
            out.extend(r for r in node if isinstance(r, dict))
        elif isinstance(node, dict):
            out.append(node)
    return out


def record_schema(spec: Spec, content: dict[str, Any], record_path: tuple[str, ...]):
    node = spec.flatten(content["schema"])
    for key in record_path:
        node = spec.flatten(node.get("properties", {}).get(key, {}))
        if node.get("type") == "array" or "items" in node:
            node = spec.flatten(node.get("items", {}))
    return node


def build_stream(
    spec: Spec, stream: str, version: str, path: str, record_path: tuple[str, ...]
) -> tuple[dict[str, Any], dict[str, str]]:
    op, content = response_of(spec, path)
    record = record_schema(spec, content, record_path)
    examples = record_examples(content, record_path)
    conv = Converter(spec, stream)

    properties: dict[str, Any] = {}
    for key, sub in record.get("properties", {}).items():
        sub_ex = [e[key] for e in examples if key in e]
        properties[key] = conv.convert(sub, sub_ex, key, key)
    for ex in examples:
        for key in ex:
            if key not in properties:
                sub_ex = [e[key] for e in examples if key in e]
                properties[key] = conv.convert({}, sub_ex, key, key)

    if version == "v2":
        for param in op.get("parameters", []):
            param = spec.deref(param)
            if param.get("name") != "include_fields":
                continue
            pschema = spec.flatten(param.get("schema", {}))
            enum = pschema.get("enum") or spec.flatten(pschema.get("items", {})).get("enum", [])
            for value in enum:
                if value not in properties:
                    properties[value] = include_field_schema(value)
                    if "format" in properties[value]:
                        conv.formats[value] = properties[value]["format"]
        if "custom_fields" in properties or stream in V2_CUSTOM_FIELD_STREAMS:
            desc = properties.get("custom_fields", {}).get("description")
            properties["custom_fields"] = {
                **({"description": desc} if desc else {}),
                "type": ["object", "null"],
                "additionalProperties": True,
            }

    if "id" not in properties and stream not in NO_ID_STREAMS:
        raise SystemExit(f"{stream}: no `id` property in {version} GET {path}")

    schema = {
        "type": "object",
        "additionalProperties": True,
        "properties": properties,
    }
    open_objects(schema)
    return schema, conv.formats


def open_objects(node: Any) -> None:
    """Give every object schema `additionalProperties: true` (so conformance keeps keys the
    spec does not list). A free-form object gets no empty `properties`: with flattening on,
    the SDK drops such an object from the SCHEMA while it flattens the records' values into
    columns the SCHEMA lacks; without, it keeps it as one JSON column."""
    if isinstance(node, dict):
        types = node.get("type")
        if "object" in (types if isinstance(types, list) else [types]):
            node.setdefault("additionalProperties", True)
        for value in node.values():
            open_objects(value)
    elif isinstance(node, list):
        for value in node:
            open_objects(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--specs",
        type=Path,
        default=DEFAULT_SPECS,
        help="directory with openapi-v1.yaml and openapi-v2.yaml",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="print date/date-time fields")
    args = parser.parse_args(argv)

    specs = {
        "v1": Spec(args.specs / "openapi-v1.yaml"),
        "v2": Spec(args.specs / "openapi-v2.yaml"),
    }
    SCHEMA_DIR.mkdir(parents=True, exist_ok=True)

    costs: dict[str, dict[str, int | None]] = {"v1": {}, "v2": {}}
    for stream, (version, path, record_path) in STREAMS.items():
        spec = specs[version]
        schema, formats = build_stream(spec, stream, version, path, record_path)
        schema["properties"].update(ADDED_BY_TAP.get(stream, {}))
        out = SCHEMA_DIR / f"{stream}.json"
        out.write_text(json.dumps(schema, indent=2) + "\n", encoding="utf-8")
        costs[version][path] = spec.doc["paths"][path]["get"].get("x-token-cost")
        msg = f"{stream:22s} {version} {path:28s} {len(schema['properties']):3d} props"
        print(msg)
        if args.verbose and formats:
            for fmt in ("date-time", "date"):
                names = [k for k, v in formats.items() if v == fmt]
                if names:
                    print(f"    {fmt}: {', '.join(names)}")

    for version, paths in EXTRA_COST_PATHS.items():
        for path in paths:
            op = specs[version].doc["paths"].get(path, {}).get("get")
            if op is not None:
                costs[version].setdefault(path, op.get("x-token-cost"))

    costs_out = SCHEMA_DIR / "_token_costs.json"
    costs_out.write_text(json.dumps(costs, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {len(STREAMS)} schemas and {costs_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
