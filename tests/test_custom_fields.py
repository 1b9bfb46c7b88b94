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
