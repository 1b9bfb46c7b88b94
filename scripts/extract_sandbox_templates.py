"""Extract record templates for the Pipedrive sandbox from the official OpenAPI specs.

Dev-time only: the sandbox must not read the specs at runtime (a user's clone lacks them), so
this script writes ``tap_pipedrive/sandbox/templates.json`` which is committed. For each list
endpoint it keeps the first example record of the 200 response and the property names of the
response item schema, so the sandbox can emit every documented field.

Usage: python scripts/extract_sandbox_templates.py [SPEC_DIR]
(SPEC_DIR defaults to /work/shared/pipedrive-api). Needs PyYAML.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tap_pipedrive" / "sandbox" / "templates.json"

# (template name, spec file, path) for every list endpoint the sandbox serves.
ENDPOINTS: list[tuple[str, ...]] = [
    ("v2:deals", "openapi-v2.yaml", "/deals"),
    ("v2:deals_archived", "openapi-v2.yaml", "/deals/archived"),
    ("v2:persons", "openapi-v2.yaml", "/persons"),
    ("v2:organizations", "openapi-v2.yaml", "/organizations"),
    ("v2:activities", "openapi-v2.yaml", "/activities"),
    ("v2:products", "openapi-v2.yaml", "/products"),
    ("v2:pipelines", "openapi-v2.yaml", "/pipelines"),
    ("v2:stages", "openapi-v2.yaml", "/stages"),
    ("v2:dealFields", "openapi-v2.yaml", "/dealFields"),
    ("v2:personFields", "openapi-v2.yaml", "/personFields"),
    ("v2:organizationFields", "openapi-v2.yaml", "/organizationFields"),
    ("v2:productFields", "openapi-v2.yaml", "/productFields"),
    ("v2:activityFields", "openapi-v2.yaml", "/activityFields"),
    ("v1:notes", "openapi-v1.yaml", "/notes"),
    ("v1:leads", "openapi-v1.yaml", "/leads"),
    ("v1:leads_archived", "openapi-v1.yaml", "/leads/archived"),
    ("v1:users", "openapi-v1.yaml", "/users"),
    ("v1:activityTypes", "openapi-v1.yaml", "/activityTypes"),
    ("v1:currencies", "openapi-v1.yaml", "/currencies"),
    ("v1:filters", "openapi-v1.yaml", "/filters"),
    ("v1:dealFields", "openapi-v1.yaml", "/dealFields"),
    ("v1:personFields", "openapi-v1.yaml", "/personFields"),
    ("v1:organizationFields", "openapi-v1.yaml", "/organizationFields"),
    ("v1:productFields", "openapi-v1.yaml", "/productFields"),
    ("v1:activityFields", "openapi-v1.yaml", "/activityFields"),
    ("v1:noteFields", "openapi-v1.yaml", "/noteFields"),
    ("v1:leadFields", "openapi-v1.yaml", "/leadFields"),
    ("v2:dealProducts", "openapi-v2.yaml", "/deals/products"),
    ("v2:dealProductsOfDeal", "openapi-v2.yaml", "/deals/{id}/products"),
    ("v2:projects", "openapi-v2.yaml", "/projects"),
    ("v2:projects_archived", "openapi-v2.yaml", "/projects/archived"),
    ("v2:tasks", "openapi-v2.yaml", "/tasks"),
    ("v1:files", "openapi-v1.yaml", "/files"),
    ("v1:leadLabels", "openapi-v1.yaml", "/leadLabels"),
    ("v1:roles", "openapi-v1.yaml", "/roles"),
    ("v1:permissionSets", "openapi-v1.yaml", "/permissionSets"),
    # goals/find nests its records one level deeper: data.goals
    ("v1:goals", "openapi-v1.yaml", "/goals/find", "goals"),
    ("v1:callLogs", "openapi-v1.yaml", "/callLogs"),
    ("v1:dealParticipants", "openapi-v1.yaml", "/deals/{id}/participants"),
    ("v1:dealFlow", "openapi-v1.yaml", "/deals/{id}/flow"),
    ("v1:mailThreads", "openapi-v1.yaml", "/mailbox/mailThreads"),
    ("v1:mailMessages", "openapi-v1.yaml", "/mailbox/mailThreads/{id}/mailMessages"),
    ("v1:recents", "openapi-v1.yaml", "/recents"),
]


def _resolve(spec: dict[str, Any], node: Any) -> Any:
    """Follow a local ``$ref`` (the specs are mostly inlined, but not always)."""
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        cur: Any = spec
        for part in ref.lstrip("#/").split("/"):
            cur = cur[part]
        node = cur
    return node


def _props(spec: dict[str, Any], schema: Any) -> dict[str, Any]:
    """Merge the properties of a schema across allOf/oneOf/anyOf."""
    schema = _resolve(spec, schema)
    out: dict[str, Any] = {}
    if not isinstance(schema, dict):
        return out
    for key in ("allOf", "oneOf", "anyOf"):
        for sub in schema.get(key, []):
            out.update(_props(spec, sub))
    for name, sub in (schema.get("properties") or {}).items():
        out[name] = _resolve(spec, sub)
    return out


def _item_props(spec: dict[str, Any], data_schema: Any, nested: str | None = None) -> list[str]:
    data_schema = _resolve(spec, data_schema)
    if nested:
        data_schema = _props(spec, data_schema).get(nested, {})
    if isinstance(data_schema, dict) and data_schema.get("type") == "array":
        return list(_props(spec, data_schema.get("items", {})))
    return list(_props(spec, data_schema))


def _param_enums(spec: dict[str, Any], op: dict[str, Any]) -> dict[str, list[Any]]:
    """Allowed values of the enumerated query parameters (include_fields, sort_by, ...)."""
    out: dict[str, list[Any]] = {}
    for p in op.get("parameters", []):
        p = _resolve(spec, p)
        schema = _resolve(spec, p.get("schema") or {})
        enum = schema.get("enum") or _resolve(spec, schema.get("items") or {}).get("enum")
        if enum and p.get("in") == "query":
            out[p["name"]] = enum
    return out


def _variant_props(spec: dict[str, Any], data_schema: Any) -> dict[str, list[str]]:
    """Recents: the item schema is an anyOf of one variant per `item` type; give the
    property names of each variant's `data` object, keyed by the item type."""
    items = _resolve(spec, _resolve(spec, data_schema).get("items", {}))
    out: dict[str, list[str]] = {}
    for variant in items.get("anyOf", []):
        props = _props(spec, variant)
        for item in props.get("item", {}).get("enum", []):
            out[item] = list(_props(spec, props.get("data", {})))
    return out


def extract(spec_dir: Path) -> dict[str, Any]:
    specs = {
        name: yaml.safe_load((spec_dir / name).read_text())
        for name in ("openapi-v1.yaml", "openapi-v2.yaml")
    }
    out: dict[str, Any] = {}
    for tname, fname, path, *nested in ENDPOINTS:
        spec = specs[fname]
        op = spec["paths"][path]["get"]
        resp = _resolve(spec, op["responses"]["200"])
        media = resp["content"]["application/json"]
        schema = _props(spec, media["schema"])
        props = _item_props(spec, schema.get("data", {}), nested[0] if nested else None)
        example = media.get("example")
        if example is None:
            examples = media.get("examples") or {}
            if examples:
                example = _resolve(spec, next(iter(examples.values()))).get("value")
        data = (example or {}).get("data")
        if nested and isinstance(data, dict):
            data = data.get(nested[0])
        records = data if isinstance(data, list) else ([data] if data else [])
        out[tname] = {
            "path": path,
            "token_cost": op.get("x-token-cost"),
            "params": [_resolve(spec, p)["name"] for p in op.get("parameters", [])],
            "param_enums": _param_enums(spec, op),
            "properties": props,
            "examples": records,
            "additional_data": (example or {}).get("additional_data"),
        }
        variants = _variant_props(spec, schema.get("data", {}))
        if variants:
            out[tname]["variant_properties"] = variants
    return out


def main() -> None:
    spec_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/work/shared/pipedrive-api")
    templates = extract(spec_dir)
    OUT.write_text(json.dumps(templates, indent=1, sort_keys=True, default=str) + "\n")
    print(f"wrote {OUT} ({len(templates)} endpoints)")


if __name__ == "__main__":
    main()
