"""The tap's lean conformance yields exactly what the SDK's full conformance would."""

from __future__ import annotations

import copy
import logging
import os

import pytest
from singer_sdk.helpers._typing import conform_record_data_types

from tap_pipedrive.conform import Conformer
from tap_pipedrive.streams import STREAM_TYPES
from tap_pipedrive.tap import TapPipedrive

CONFIG = {
    "api_key": os.environ["TAP_PIPEDRIVE_TEST_API_KEY"],
    "api_url": os.environ["TAP_PIPEDRIVE_TEST_API_URL"],
    "start_date": "2019-01-01T00:00:00Z",
}
PARENTLESS = [c.name for c in STREAM_TYPES if not getattr(c, "parent_stream_type", None)]


@pytest.fixture(scope="module")
def tap() -> TapPipedrive:
    return TapPipedrive(config=CONFIG)


def sdk_conform(stream, record):
    return conform_record_data_types(
        stream_name=stream.name,
        record=record,
        schema=stream.effective_schema,
        level=stream.TYPE_CONFORMANCE_LEVEL,
        logger=logging.getLogger("test"),
    )


@pytest.mark.parametrize("name", PARENTLESS)
def test_lean_conformance_equals_the_sdks_on_every_stream(tap: TapPipedrive, name: str) -> None:
    stream = tap.streams[name]
    stream._write_starting_replication_value(None)
    context = (stream.partitions or [None])[0]
    conformer = Conformer(stream.effective_schema)
    count = 0
    for raw in stream.get_records(context):
        record = stream.post_process(raw, context)
        if record is None:
            continue
        assert conformer.conform(copy.deepcopy(record)) == sdk_conform(
            stream, copy.deepcopy(record)
        )
        count += 1
        if count >= 300:
            break
    assert count, f"{name}: no records to compare"


def test_v1_booleans_sent_as_numbers_are_fixed_like_the_sdk_does(tap: TapPipedrive) -> None:
    stream = tap.streams["deal_participants"]
    record = {
        "id": 1,
        "active_flag": 1,
        "person": {"active_flag": 0, "email": [{"primary": 1, "value": "a@b.c"}]},
        "added_by_user_id": {"has_pic": 0, "active_flag": True},
        "deal_id": 5,
    }
    expected = sdk_conform(stream, copy.deepcopy(record))
    assert Conformer(stream.effective_schema).conform(copy.deepcopy(record)) == expected
    assert expected["active_flag"] is True
