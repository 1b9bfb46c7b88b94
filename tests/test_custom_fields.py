"""Custom fields: one typed column set whichever API served the record, in both naming modes."""

from __future__ import annotations

import copy
import typing as t

import pytest

from tap_pipedrive.custom_fields import CustomFieldLayout, build_custom_fields, snake_case

K = {name: f"{index:02d}" + "a" * 38 for index, name in enumerate(
    ["text", "num", "money", "date", "drange", "time", "trange", "enum", "set", "user", "org",
     "person", "phone", "address", "big"]
)}  # fmt: skip

DEFINITIONS: list[dict[str, t.Any]] = [
    {"id": 1, "key": "title", "name": "Title", "field_type": "varchar", "edit_flag": False},
    {"id": 10, "key": K["text"], "name": "Region", "field_type": "varchar", "edit_flag": True},
    {"id": 11, "key": K["num"], "name": "Score", "field_type": "double", "edit_flag": True},
    {"id": 12, "key": K["money"], "name": "Budget", "field_type": "monetary", "edit_flag": True},
    {"id": 13, "key": K["date"], "name": "Kick-off", "field_type": "date", "edit_flag": True},
    {"id": 14, "key": K["drange"], "name": "Trial", "field_type": "daterange", "edit_flag": True},
    {"id": 15, "key": K["time"], "name": "Call at", "field_type": "time", "edit_flag": True},
    {"id": 16, "key": K["trange"], "name": "Hours", "field_type": "timerange", "edit_flag": True},
    {"id": 17, "key": K["enum"], "name": "Tier", "field_type": "enum", "edit_flag": True,
     "options": [{"id": 101, "label": "Gold"}, {"id": 102, "label": "Silver"}]},
    {"id": 18, "key": K["set"], "name": "Channels", "field_type": "set", "edit_flag": True,
     "options": [{"id": 201, "label": "Email"}, {"id": 202, "label": "Phone"}]},
    {"id": 19, "key": K["user"], "name": "Reviewer", "field_type": "user", "edit_flag": True},
    {"id": 20, "key": K["org"], "name": "Partner", "field_type": "org", "edit_flag": True},
    {"id": 21, "key": K["person"], "name": "Champion", "field_type": "people", "edit_flag": True},
    {"id": 22, "key": K["phone"], "name": "Hotline", "field_type": "phone", "edit_flag": True},
    {"id": 23, "key": K["address"], "name": "Site", "field_type": "address", "edit_flag": True},
    {"id": 24, "key": "birthday", "name": "Title", "field_type": "varchar", "edit_flag": True},
]  # fmt: skip

V1_RECORD = {
    "id": 7, "title": "Big deal",
    K["text"]: "EMEA", K["num"]: 4.5, K["money"]: 2300, f"{K['money']}_currency": "EUR",
    K["date"]: "2024-05-01", K["drange"]: "2024-05-01", f"{K['drange']}_until": "2024-05-31",
    K["time"]: "10:30:00", K["trange"]: "09:00:00", f"{K['trange']}_until": "17:00:00",
    K["enum"]: "102", K["set"]: "201,202", K["user"]: {"id": 3, "value": 3, "name": "Ann"},
    K["org"]: {"value": 44, "name": "Acme"}, K["person"]: {"value": 55, "name": "Bo"},
    K["phone"]: "+3725551234", K["address"]: "Main St 1, Tallinn",
    f"{K['address']}_route": "Main St", f"{K['address']}_locality": "Tallinn",
    f"{K['address']}_formatted_address": "Main St 1, 10111 Tallinn, Estonia",
    "birthday": "Mr",
}  # fmt: skip

V2_RECORD = {
    "id": 7, "title": "Big deal",
    "custom_fields": {
        K["text"]: "EMEA", K["num"]: 4.5, K["money"]: {"value": 2300, "currency": "EUR"},
        K["date"]: "2024-05-01", K["drange"]: {"value": "2024-05-01", "until": "2024-05-31"},
        K["time"]: "10:30:00", K["trange"]: {"value": "09:00:00", "until": "17:00:00"},
        K["enum"]: 102, K["set"]: [201, 202], K["user"]: 3, K["org"]: 44, K["person"]: 55,
        K["phone"]: "+3725551234",
        K["address"]: {"value": "Main St 1, Tallinn", "route": "Main St", "locality": "Tallinn",
                       "formatted_address": "Main St 1, 10111 Tallinn, Estonia"},
        "birthday": "Mr",
    },
}  # fmt: skip


def layout(mode: str = "key", labels: bool = True) -> CustomFieldLayout:
    fields = build_custom_fields(DEFINITIONS, name_mode=mode, reserved={"id", "title"})
    return CustomFieldLayout(fields, labels=labels)


def apply(record: dict[str, t.Any], api: str, mode: str = "key") -> dict[str, t.Any]:
    row = copy.deepcopy(record)
    getattr(layout(mode), f"apply_{api}")(row)
    return row


@pytest.mark.parametrize("mode", ["key", "name"])
def test_v1_and_v2_give_the_same_typed_columns(mode: str) -> None:
    v1, v2 = apply(V1_RECORD, "v1", mode), apply(V2_RECORD, "v2", mode)
    for column, value in v1.items():
        assert v2.get(column) == value, column
    assert set(layout(mode).schema_properties()) >= set(v1) - {"id", "title"}


def test_values_are_typed_by_field_type() -> None:
    row = apply(V1_RECORD, "v1")
    assert row[K["num"]] == 4.5
    assert (row[K["money"]], row[f"{K['money']}_currency"]) == (2300, "EUR")
    assert (row[K["drange"]], row[f"{K['drange']}_until"]) == ("2024-05-01", "2024-05-31")
    assert row[f"{K['trange']}_until"] == "17:00:00"
    assert row[K["enum"]] == 102 and row[f"{K['enum']}_label"] == "Silver"
    assert row[K["set"]] == [201, 202] and row[f"{K['set']}_labels"] == ["Email", "Phone"]
    assert (row[K["user"]], row[K["org"]], row[K["person"]]) == (3, 44, 55)
    assert row[f"{K['address']}_locality"] == "Tallinn"
    assert row[f"{K['address']}_postal_code"] is None


def test_schema_types_match_field_types() -> None:
    schema = layout().schema_properties()
    assert schema[K["num"]]["type"] == ["number", "null"]
    assert schema[K["date"]]["format"] == "date"
    assert schema[f"{K['drange']}_until"]["format"] == "date"
    assert schema[K["enum"]]["type"] == ["integer", "null"]
    assert schema[K["set"]]["items"] == {"type": "integer"}
    assert schema[f"{K['enum']}_label"]["type"] == ["string", "null"]
    assert schema[K["user"]]["type"] == ["integer", "null"]
    assert f"{K['address']}_formatted_address" in schema
    assert "Budget" in schema[K["money"]]["description"]


def test_name_mode_uses_snake_case_and_a_stable_rule_for_collisions() -> None:
    row = apply(V1_RECORD, "v1", mode="name")
    assert row["region"] == "EMEA"
    assert (row["budget"], row["budget_currency"]) == (2300, "EUR")
    assert row["kick_off"] == "2024-05-01"
    assert row["tier"] == 102 and row["tier_label"] == "Silver"
    # "Title" collides with the standard `title` column: the key's first 8 characters decide.
    assert row["title"] == "Big deal"
    assert row["title_birthday"] == "Mr"


def test_labels_can_be_switched_off() -> None:
    row = copy.deepcopy(V1_RECORD)
    layout(labels=False).apply_v1(row)
    assert f"{K['enum']}_label" not in row and row[K["enum"]] == 102


def test_a_field_added_after_the_field_list_was_read_is_kept() -> None:
    record = copy.deepcopy(V2_RECORD)
    record["custom_fields"]["f" * 40] = {"value": 9, "currency": "USD"}
    row = apply(record, "v2")
    assert (row["f" * 40], row["f" * 40 + "_currency"]) == (9, "USD")


def test_standard_fields_and_empty_values() -> None:
    row = apply({**V1_RECORD, K["enum"]: "", K["set"]: None, K["text"]: ""}, "v1")
    assert row[K["enum"]] is None and row[f"{K['enum']}_label"] is None
    assert row[K["set"]] is None and row[K["text"]] is None
    assert row["title"] == "Big deal"


@pytest.mark.parametrize(
    ("name", "expected"),
    [("Deal's Region (EU)", "deal_s_region_eu"), ("NPS", "nps"), ("2nd contact", "f_2nd_contact"),
     ("camelCase name", "camel_case_name"), ("   ", "")],
)  # fmt: skip
def test_snake_case(name: str, expected: str) -> None:
    assert snake_case(name) == expected


def columns(definitions: list[dict[str, t.Any]], **kw: t.Any) -> dict[str, str]:
    kw.setdefault("reserved", {"id", "title"})
    return {f.name: f.column for f in build_custom_fields(definitions, name_mode="name", **kw)}


def text_field(id_: int, key: str, name: str, field_type: str = "varchar") -> dict[str, t.Any]:
    return {"id": id_, "key": key, "name": name, "field_type": field_type, "edit_flag": True}


def test_a_rename_elsewhere_never_puts_another_fields_values_in_a_column() -> None:
    """A colleague renames field A to the name of field B: B's column must not switch to
    A's values (as it did when the lower field id kept the bare name), and A's values must
    not land where B's were. Both go to columns suffixed by their own keys."""
    a, b = "a" * 40, "b" * 40
    before = build_custom_fields(
        [text_field(1, a, "Lead source detail"), text_field(2, b, "Campaign")],
        name_mode="name", reserved={"id"},
    )  # fmt: skip
    after = build_custom_fields(
        [text_field(1, a, "Campaign"), text_field(2, b, "Campaign")],
        name_mode="name", reserved={"id"},
    )  # fmt: skip
    column_of = {f.key: f.column for f in before}
    assert column_of == {a: "lead_source_detail", b: "campaign"}
    moved = {f.key: f.column for f in after}
    assert moved == {a: "campaign_aaaaaaaa", b: "campaign_bbbbbbbb"}
    for key, column in moved.items():  # no column now holds the other field's values
        assert column not in {c for k, c in column_of.items() if k != key}


def test_label_columns_count_as_claimed_names() -> None:
    """An enum "Customer type" writes `customer_type_label`; a text field named "Customer
    type label" must not share that column (its values were overwritten by the label)."""
    got = columns([
        {**text_field(1, "e" * 40, "Customer type", "enum"), "options": [{"id": 1, "label": "A"}]},
        text_field(2, "t" * 40, "Customer type label"),
    ])  # fmt: skip
    assert got == {"Customer type": "customer_type_eeeeeeee",
                   "Customer type label": "customer_type_label_tttttttt"}  # fmt: skip


def test_the_catalogs_columns_win_over_renames() -> None:
    """Run with a catalog discovered before a rename: the field keeps its catalog column,
    so a deselected field stays deselected and the SCHEMA matches the records."""
    renamed = [text_field(1, "h" * 40, "Address (home)"), text_field(2, "w" * 40, "Home address")]
    got = columns(renamed, pinned={"h" * 40: "home_address"})
    assert got == {"Address (home)": "home_address", "Home address": "home_address_wwwwwwww"}


def test_a_custom_field_keyed_like_a_standard_column_is_left_to_it() -> None:
    """Contact Sync makes custom person fields with plain keys (`birthday`) that API v2
    serves as standard properties: the standard column and its type stay."""
    fields = build_custom_fields(
        [text_field(1, "birthday", "Birthday", "date"), text_field(2, "x" * 40, "Nickname")],
        name_mode="key", reserved={"id", "birthday"},
    )  # fmt: skip
    assert [f.key for f in fields] == ["x" * 40]


def test_a_deleted_option_has_no_label_in_an_enum_or_a_set() -> None:
    definitions = [
        {**text_field(1, "e" * 40, "Tier", "enum"), "options": [{"id": 1, "label": "Gold"}]},
        {**text_field(2, "s" * 40, "Tags", "set"), "options": [{"id": 1, "label": "Web"}]},
    ]  # fmt: skip
    fields = build_custom_fields(definitions, name_mode="name", reserved={"id"})
    row = {"custom_fields": {"e" * 40: 9, "s" * 40: [9, 1]}}
    CustomFieldLayout(fields, labels=True).apply_v2(row)
    assert (row["tier_label"], row["tags_labels"]) == (None, [None, "Web"])


@pytest.mark.parametrize(
    ("name", "expected"),
    [("Téléphone assistant", "telephone_assistant"), ("Grüße", "grusse"), ("Größe", "grosse"),
     ("Прозвище", "прозвище"), ("Район", "район"), ("背景", "背景"), ("Øre-Æble", "ore_aeble")],
)  # fmt: skip
def test_names_in_other_alphabets_stay_readable(name: str, expected: str) -> None:
    """Accents are dropped from Latin letters; other scripts are kept, not replaced by
    the field's 40-character key."""
    assert snake_case(name) == expected


def test_a_pinned_column_that_collides_is_not_kept() -> None:
    """A catalog from before `_label` counted: enum "Tier" pinned to `tier`, text field
    "Tier label" to `tier_label`, where the enum writes its label. Kept, the text
    overwrote the label; the later field gets a column of its own instead."""
    definitions = [
        {**text_field(1, "a" * 40, "Tier", "enum"), "options": [{"id": 1, "label": "Gold"}]},
        text_field(2, "b" * 40, "Tier label"),
    ]  # fmt: skip
    pins = {"a" * 40: "tier", "b" * 40: "tier_label"}
    assert columns(definitions, pinned=pins) == {
        "Tier": "tier", "Tier label": "tier_label_bbbbbbbb"}  # fmt: skip
    definitions[0]["id"], definitions[1]["id"] = 2, 1  # the text field older: same columns
    assert columns(definitions, pinned=pins) == {
        "Tier": "tier", "Tier label": "tier_label_bbbbbbbb"}  # fmt: skip


def test_chained_pins_keep_every_column_that_collides_with_no_kept_one() -> None:
    """Three pins from an older catalog: enum "Tier" (`tier`, `tier_label`), enum "Tier
    label" (`tier_label`, `tier_label_label`), text "Tier label label". Only the middle
    one collides with a kept pin; the third lost its column to a dropped pin's label."""
    enum = [{"id": 1, "label": "Gold"}]
    definitions = [
        {**text_field(1, "a" * 40, "Tier", "enum"), "options": enum},
        {**text_field(2, "b" * 40, "Tier label", "enum"), "options": enum},
        text_field(3, "c" * 40, "Tier label label"),
    ]  # fmt: skip
    pins = {"a" * 40: "tier", "b" * 40: "tier_label", "c" * 40: "tier_label_label"}
    assert columns(definitions, pinned=pins) == {
        "Tier": "tier", "Tier label": "tier_label_bbbbbbbb",
        "Tier label label": "tier_label_label"}  # fmt: skip


def test_a_field_recreated_under_a_deleted_fields_name_does_not_inherit_its_column() -> None:
    """The catalog types `tier` as the deleted enum's integer; a new text field "Tier"
    took that column, its strings under an integer SCHEMA."""
    got = columns([text_field(9, "n" * 40, "Tier")], pinned={"o" * 40: "tier"})
    assert got == {"Tier": "tier_nnnnnnnn"}
