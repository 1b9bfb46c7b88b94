"""Custom fields: typed columns named by Pipedrive's key (default) or by the field's name.

Pipedrive lists an entity's fields at `/v1/{entity}Fields`; the custom ones carry
`edit_flag: true` (Contact Sync creates custom fields with plain keys like `birthday`, so the
key's shape proves nothing). Projects' are at `/api/v2/projectFields`, in v2's terms
(`field_code`, `is_custom_field`). v1 records hold custom fields as top-level keys, with companion
keys for the parts of complex types (`K_currency`, `K_until`, `K_route`, ...); v2 records hold
them under `custom_fields`, complex ones as objects (`{"value": 2300, "currency": "EUR"}`).
Both are laid out here as v1 lays them out, so one account yields one column set whichever API
served the entity, and values get one type per field type (an enum's option id is an integer
in both, a set's ids a list of integers, a user/org/person reference an id).
"""

from __future__ import annotations

import contextlib
import re
import typing as t
import unicodedata
from collections import Counter
from dataclasses import dataclass, field

NAME_MODES = ("key", "name")

ADDRESS_PARTS = (
    "subpremise", "street_number", "route", "sublocality", "locality",
    "admin_area_level_1", "admin_area_level_2", "country", "postal_code", "formatted_address",
)  # fmt: skip

ANY_TYPE = {"type": ["string", "number", "boolean", "object", "array", "null"]}
_STRING = {"type": ["string", "null"]}
_DATE = {"type": ["string", "null"], "format": "date"}
_NUMBER = {"type": ["number", "null"]}
_INTEGER = {"type": ["integer", "null"]}
_INT_LIST = {"type": ["array", "null"], "items": {"type": "integer"}}
_STR_LIST = {"type": ["array", "null"], "items": {"type": ["string", "null"]}}

#: JSON schema of the main column, by Pipedrive `field_type`.
MAIN_TYPES: dict[str, dict[str, t.Any]] = {
    "varchar": _STRING, "varchar_auto": _STRING, "varchar_options": _STRING, "text": _STRING,
    "phone": _STRING, "address": _STRING, "time": _STRING, "timerange": _STRING,
    "double": _NUMBER, "monetary": _NUMBER, "int": _INTEGER,
    "date": _DATE, "daterange": _DATE,
    "enum": _INTEGER, "status": _STRING, "visible_to": _STRING,
    "set": _INT_LIST,
    "user": _INTEGER, "org": _INTEGER, "people": _INTEGER, "person": _INTEGER,
}  # fmt: skip

#: Companion columns (`<column>_<suffix>`) by field type, with their schema.
COMPANIONS: dict[str, dict[str, dict[str, t.Any]]] = {
    "monetary": {"currency": _STRING},
    "daterange": {"until": _DATE},
    "timerange": {"until": _STRING},
    "address": dict.fromkeys(ADDRESS_PARTS, _STRING),
}

#: The option label column (`<column>_<suffix>`, with `label_columns`) of enums and sets.
LABEL_COLUMNS: dict[str, tuple[str, dict[str, t.Any]]] = {
    "enum": ("label", {**_STRING, "description": "Option label"}),
    "set": ("labels", {**_STR_LIST, "description": "Option labels"}),
}


#: Latin letters that Unicode does not decompose into an ASCII letter and a mark.
_LATIN_LETTERS = str.maketrans({
    "ß": "ss", "ẞ": "SS", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ø": "o", "Ø": "O",
    "đ": "d", "Đ": "D", "ł": "l", "Ł": "L", "þ": "th", "Þ": "TH", "ð": "d", "Ð": "D", "\u0131": "i",
})  # fmt: skip


def _ascii_letter(char: str) -> str:
    """`é` -> `e`, `ﬁ` -> `fi`; a letter of another script (`й`, `背`) stays as it is."""
    if char.isascii():
        return char
    bare = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
    return bare if bare and bare.isascii() else char


def snake_case(name: str) -> str:
    """`Deal's Region (EU)` -> `deal_s_region_eu`, `Größe` -> `grosse`, `Прозвище` ->
    `прозвище`: Latin letters lose their accents, letters of other scripts are kept (a
    name in Cyrillic reads better than the field's hash key)."""
    text = "".join(map(_ascii_letter, name.strip().translate(_LATIN_LETTERS)))
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)
    text = re.sub(r"[\W_]+", "_", text).strip("_").lower()
    if text and text[0].isdigit():
        text = f"f_{text}"
    return text


@dataclass
class CustomField:
    """One custom field of an entity, and the column it becomes."""

    key: str
    name: str
    field_type: str
    column: str
    options: dict[int, str] = field(default_factory=dict)
    companions: tuple[str, ...] = ()

    def schema_properties(self, labels: bool) -> dict[str, dict[str, t.Any]]:
        description = f"Custom field '{self.name}' ({self.field_type}, key {self.key})"
        main = dict(MAIN_TYPES.get(self.field_type, ANY_TYPE))
        properties = {self.column: {**main, "description": description}}
        for suffix, schema in COMPANIONS.get(self.field_type, {}).items():
            properties[f"{self.column}_{suffix}"] = dict(schema)
        if labels and self.field_type in LABEL_COLUMNS:
            suffix, schema = LABEL_COLUMNS[self.field_type]
            properties[f"{self.column}_{suffix}"] = dict(schema)
        return properties


def companion_suffixes(field_type: str) -> tuple[str, ...]:
    """Every `<column>_<suffix>` a field of this type may write: its parts and its label."""
    label = LABEL_COLUMNS[field_type][:1] if field_type in LABEL_COLUMNS else ()
    return (*COMPANIONS.get(field_type, {}), *label)


def build_custom_fields(
    definitions: t.Iterable[dict[str, t.Any]],
    *,
    name_mode: str,
    reserved: t.Iterable[str],
    pinned: t.Mapping[str, str] | None = None,
) -> list[CustomField]:
    """Custom fields from `*Fields` rows, with their output columns.

    In `name` mode a column is the field's name in snake_case, kept bare only while no
    standard column and no other custom field claims it or one of its companion columns
    (`_currency`, `_label`, ...); otherwise, or if the name is empty, the field's own key
    decides: `_` and its first 8 characters are appended (the whole key for an empty name).
    So a suffixed column always holds the same field, and a rename elsewhere can move a
    field out of its bare column but never put another field's values in it.

    `pinned` (key -> column, from the run's catalog) comes first: the columns of a catalog
    stay those of the fields it was discovered with, renamed since or not, until the next
    discovery. Fields whose key is a standard column (Contact Sync's `birthday`, served by
    the API as the standard property) are left to that column.
    """
    reserved = set(reserved)
    pinned = dict(pinned or {})
    rows = [_v1_shaped(row) for row in definitions]
    rows = [row for row in rows if row.get("edit_flag") and row.get("key")]
    rows = [row for row in rows if str(row["key"]) not in reserved]
    rows.sort(key=lambda row: (row.get("id") or 0, row["key"]))

    def claims(row: dict[str, t.Any], column: str) -> set[str]:
        suffixes = companion_suffixes(str(row.get("field_type") or ""))
        return {column, *(f"{column}_{suffix}" for suffix in suffixes)}

    columns: dict[str, str] = {}
    taken = set(reserved)
    # A pin that collides (a catalog made under older rules) is not kept. A field whose
    # own column is a kept pin's companion (a text "Tier label" on an enum "Tier"'s
    # `tier_label`) gives way, whatever their ids: the enum keeps its columns. Pins are
    # settled shortest column first, so a companion's owner is settled before it.
    live = {str(row["key"]) for row in rows}
    for row in sorted(rows, key=lambda row: len(pinned.get(str(row["key"]), ""))):
        key = str(row["key"])
        if key in pinned and not claims(row, pinned[key]) & taken:
            columns[key] = pinned[key]
            taken |= claims(row, pinned[key])
    # The catalog's columns of fields deleted since stay theirs: a field created under
    # the same name (another type, maybe) must not inherit the old column and its type.
    taken |= {column for key, column in pinned.items() if key not in live}
    unpinned = [row for row in rows if str(row["key"]) not in columns]
    if name_mode != "name":
        for row in unpinned:
            columns[str(row["key"])] = str(row["key"])
    else:
        base = {str(row["key"]): snake_case(str(row.get("name") or "")) for row in unpinned}
        claimed = Counter(c for row in unpinned for c in claims(row, base[str(row["key"])]))
        suffixed = []
        for row in unpinned:
            key = str(row["key"])
            wanted = claims(row, base[key])
            if base[key] and not wanted & taken and all(claimed[c] == 1 for c in wanted):
                columns[key] = base[key]
                taken |= wanted
            else:
                suffixed.append(row)
        for row in suffixed:
            key = str(row["key"])
            column = f"{base[key]}_{key[:8]}" if base[key] else key
            if claims(row, column) & taken:
                column = f"{base[key]}_{key}" if base[key] else key
            columns[key] = column
            taken |= claims(row, column)

    fields: list[CustomField] = []
    for row in rows:
        key = str(row["key"])
        field_type = str(row.get("field_type") or "")
        options = {}
        for option in row.get("options") or []:
            try:
                options[int(option["id"])] = str(option.get("label"))
            except (KeyError, TypeError, ValueError):
                continue
        companions = tuple(COMPANIONS.get(field_type, {}))
        fields.append(CustomField(key, str(row.get("name") or key), field_type, columns[key],
                                  options, companions))  # fmt: skip
    return fields


#: How `CustomField.schema_properties` names the key in a main column's description.
_DESCRIBED_KEY = re.compile(r"^Custom field '.*' \(.*, key (\S+)\)$", re.DOTALL)


def described_columns(properties: t.Mapping[str, t.Any]) -> dict[str, str]:
    """Key -> column of the custom fields a schema (a catalog's) was discovered with."""
    columns: dict[str, str] = {}
    for column, schema in properties.items():
        match = _DESCRIBED_KEY.match(str((schema or {}).get("description") or ""))
        if match:
            columns.setdefault(match.group(1), column)
    return columns


def _v1_shaped(row: dict[str, t.Any]) -> dict[str, t.Any]:
    """A v2 field definition (`/api/v2/projectFields`: `field_code`, `field_name`,
    `is_custom_field`) in v1's terms (`key`, `name`, `edit_flag`); a v1 one unchanged."""
    if "key" in row or "field_code" not in row:
        return row
    return {
        "key": row["field_code"],
        "name": row.get("field_name"),
        "field_type": row.get("field_type"),
        "options": row.get("options"),
        "edit_flag": bool(row.get("is_custom_field")),
    }


def _as_int(value: t.Any) -> t.Any:
    """An id from `5`, `"5"`, `{"value": 5}` or `{"id": 5}`; anything else unchanged."""
    if isinstance(value, dict):
        value = value.get("value", value.get("id"))
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return value


def _as_int_list(value: t.Any) -> t.Any:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = [part for part in value.split(",") if part.strip()]
    if isinstance(value, list):
        return [_as_int(item) for item in value]
    return [_as_int(value)]


def _as_float(value: t.Any) -> t.Any:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return float(value)
    return value


#: How a field type's values are typed.
_CONVERT: dict[str, t.Callable[[t.Any], t.Any]] = {
    **dict.fromkeys(("enum", "user", "org", "people", "person", "int"), _as_int),
    "set": _as_int_list,
    "double": _as_float,
    "monetary": _as_float,
}
#: Field types whose v2 value is an object to keep whole (read by `_as_int`).
_OBJECT_VALUED = frozenset(("user", "org", "people"))


class _FieldWriter:
    """How one custom field's value is written into a record, with every per-field choice
    (conversion, label column, column names of its parts) made once, not per record."""

    __slots__ = ("column", "convert", "label_column", "labels_column", "object_valued",
                 "options", "part_columns")  # fmt: skip

    def __init__(self, custom: CustomField, *, labels: bool) -> None:
        self.column = custom.column
        self.convert = _CONVERT.get(custom.field_type)
        self.object_valued = custom.field_type in _OBJECT_VALUED
        self.options = custom.options
        label = LABEL_COLUMNS.get(custom.field_type) if labels else None
        label_column = f"{custom.column}_{label[0]}" if label else None
        self.label_column = label_column if custom.field_type == "enum" else None
        self.labels_column = label_column if custom.field_type == "set" else None
        self.part_columns = {suffix: f"{custom.column}_{suffix}" for suffix in custom.companions}

    def write(self, row: dict[str, t.Any], value: t.Any, parts: dict[str, t.Any] | None) -> None:
        """Runs for every custom value of every record."""
        if value == "":
            value = None
        if self.convert is not None:
            value = self.convert(value)
        row[self.column] = value
        if parts:
            columns = self.part_columns
            for suffix, part in parts.items():
                column = columns.get(suffix)
                if column is None:
                    column = columns[suffix] = f"{self.column}_{suffix}"
                row[column] = None if part == "" else part
        if self.label_column is not None:
            row[self.label_column] = self.options.get(value) if value is not None else None
        elif self.labels_column is not None:
            options = self.options
            row[self.labels_column] = [options.get(option) for option in value] if value else None


class CustomFieldLayout:
    """Rewrites one entity's records so custom fields sit in their typed, named columns."""

    def __init__(self, fields: list[CustomField], *, labels: bool) -> None:
        self.fields = fields
        self.labels = labels
        self._writers = {f.key: _FieldWriter(f, labels=labels) for f in fields}
        #: v1: each field's key, writer and the keys of its parts beside it.
        self._v1 = [
            (f.key, self._writers[f.key], tuple((s, f"{f.key}_{s}") for s in f.companions))
            for f in fields
        ]

    def schema_properties(self) -> dict[str, dict[str, t.Any]]:
        properties: dict[str, dict[str, t.Any]] = {}
        for custom in self.fields:
            properties.update(custom.schema_properties(self.labels))
        return properties

    def apply_v1(self, row: dict[str, t.Any]) -> None:
        """Top-level `K`, `K_<part>` -> `<column>`, `<column>_<part>`, typed."""
        for key, writer, part_keys in self._v1:
            if key not in row:
                continue
            value = row.pop(key)
            parts = {suffix: row.pop(part_key, None) for suffix, part_key in part_keys}
            writer.write(row, value, parts)

    def apply_v2(self, row: dict[str, t.Any]) -> None:
        """`custom_fields: {K: value or {value, <part>...}}` -> the same columns as v1."""
        values = row.pop("custom_fields", None)
        if not values:
            return
        writers = self._writers
        for key, value in values.items():
            writer = writers.get(key)
            parts: dict[str, t.Any] | None = None
            if isinstance(value, dict) and (writer is None or not writer.object_valued):
                # The main value is under the first of these keys; the rest are its parts.
                main_key = (
                    "value" if "value" in value
                    else "from" if "from" in value
                    else "start" if "start" in value
                    else None
                )  # fmt: skip
                parts = {k: v for k, v in value.items() if k != main_key}
                value = value.get(main_key) if main_key else None
                if writer is None and "id" in parts and value is None:
                    value, parts = parts.pop("id"), {}
            if writer is None:
                # Added in Pipedrive after the field list was read: keep it, untyped.
                row[key] = value
                for suffix, part in (parts or {}).items():
                    row[f"{key}_{suffix}"] = part
                continue
            writer.write(row, value, parts)
