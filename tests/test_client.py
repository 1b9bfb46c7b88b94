"""The client's paging, retries and errors, against canned responses (`responses`)."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import threading
import time
import typing as t
from contextlib import redirect_stdout

import pytest
import requests
import responses
import singer_sdk.exceptions
from responses import matchers

from tap_pipedrive.client import PipedriveStream, api_roots
from tap_pipedrive.errors import (
    AccessError,
    ApiError,
    AuthError,
    ConfigError,
    ConnectionFailed,
    PipedriveError,
    RateLimitError,
)
from tap_pipedrive.tap import TapPipedrive
from tests.helpers import field_definition_urls, mock_an_account_without_custom_fields

TOKEN = "unit-test-token-0123456789abcdef"
HOST = "https://pd.example.test"
V1 = f"{HOST}/v1"
V2 = f"{HOST}/api/v2"
#: One request at a time: these tests pin the paging protocol request by request (the
#: requests kept in flight are tested in test_pipeline.py).
CONFIG = {
    "api_key": TOKEN,
    "start_date": "2024-05-01T00:00:00Z",
    "api_url": HOST,
    "max_concurrent_requests": 1,
}


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries wait milliseconds here; what is tested is that they happen."""
    monkeypatch.setattr(PipedriveStream, "backoff_base_seconds", 0.001)
    monkeypatch.setattr(PipedriveStream, "backoff_max_seconds", 0.01)
    monkeypatch.setattr("tap_pipedrive.client.time.sleep", lambda _s: None)


def api_calls() -> list[t.Any]:
    """The requests made, less the `*Fields` reads of the tap's setup and `/recents`."""
    return [
        call
        for call in responses.calls
        if "Fields" not in call.request.url and "/recents" not in call.request.url
    ]


def make_stream(name: str, **config: t.Any) -> PipedriveStream:
    mock_an_account_without_custom_fields(HOST)
    tap = TapPipedrive(config={**CONFIG, **config}, validate_config=True)
    return t.cast(PipedriveStream, tap.streams[name])


def records(stream: PipedriveStream) -> list[dict[str, t.Any]]:
    """What the stream yields, with the starting bookmark set up as a sync does it."""
    stream._write_starting_replication_value(None)
    return list(stream.get_records(None))


def v2_page(ids: list[int], cursor: str | None) -> dict[str, t.Any]:
    data = [{"id": i, "update_time": f"2024-06-0{1 + i % 9}T10:00:00Z"} for i in ids]
    return {"success": True, "data": data, "additional_data": {"next_cursor": cursor}}


def v1_page(
    ids: list[t.Any], start: int, more: bool, times: list[str] | None = None
) -> dict[str, t.Any]:
    pagination: dict[str, t.Any] = {
        "start": start,
        "limit": 500,
        "more_items_in_collection": more,
    }
    if more:
        pagination["next_start"] = start + len(ids)
    times = times or ["2024-06-01 10:00:00"] * len(ids)
    return {
        "success": True,
        "data": [{"id": i, "update_time": u} for i, u in zip(ids, times, strict=True)] or None,
        "additional_data": {"pagination": pagination},
    }


@responses.activate
def test_v2_cursor_paging_walks_every_page_with_the_token_only_in_the_header() -> None:
    responses.get(
        f"{V2}/deals",
        json=v2_page([1, 2], "c2"),
        match=[matchers.query_param_matcher({"limit": "500"}, strict_match=False)],
    )
    responses.get(
        f"{V2}/deals",
        json=v2_page([3], None),
        match=[matchers.query_param_matcher({"cursor": "c2"}, strict_match=False)],
    )
    # The first call carries no cursor; responses matches in order of registration.
    got = records(make_stream("deals"))
    assert [r["id"] for r in got] == [1, 2, 3]
    assert len(api_calls()) == 2
    first, second = (call.request for call in api_calls())
    assert "cursor" not in first.url
    assert "cursor=c2" in second.url
    for request in (first, second):
        assert request.headers["x-api-token"] == TOKEN
        assert TOKEN not in request.url
        assert "api_token" not in request.url
        assert "limit=500" in request.url
        assert "sort_by=update_time" in request.url
        assert "sort_direction=asc" in request.url
        assert "updated_since=2024-05-01T00%3A00%3A00Z" in request.url


@responses.activate
def test_v2_timestamps_are_rfc3339() -> None:
    responses.get(f"{V2}/deals", json=v2_page([1], None))
    [record] = records(make_stream("deals"))
    stream = make_stream("deals")
    record = stream.post_process(record)
    assert record["update_time"] == "2024-06-02T10:00:00+00:00"


@responses.activate
def test_v1_offset_paging_follows_next_start_and_stops_on_data_null() -> None:
    """An unsorted v1 list (here filters) pages by plain offsets."""
    responses.get(f"{V1}/currencies", json=v1_page([1, 2], 0, True))
    responses.get(f"{V1}/currencies", json=v1_page([3], 2, True))
    responses.get(f"{V1}/currencies", json=v1_page([], 3, False))
    stream = make_stream("currencies")
    stream.paginated = True
    got = records(stream)
    assert [r["id"] for r in got] == [1, 2, 3]
    urls = [call.request.url for call in api_calls()]
    assert "start=0" in urls[0] and "start=2" in urls[1] and "start=3" in urls[2]
    assert all("limit=500" in url for url in urls)


@responses.activate
def test_v1_sorted_paging_restarts_at_the_last_update_time() -> None:
    """Each page asks again from the last record's second, skipping only that second's
    records already read, so a record updated mid-sync cannot shift another one away;
    it overlaps the page before by its last record, which is dropped."""
    ten = "2024-06-01 10:00:00"
    responses.get(
        f"{V1}/notes", json=v1_page([1, 2, 3], 0, True, ["2024-06-01 09:00:00", ten, ten])
    )
    responses.get(f"{V1}/notes", json=v1_page([3, 4], 1, True, [ten, ten]))
    responses.get(f"{V1}/notes", json=v1_page([4, 5], 2, True, [ten, "2024-06-02 08:00:00"]))
    responses.get(f"{V1}/notes", json=v1_page([5], 0, False, ["2024-06-02 08:00:00"]))
    got = records(make_stream("notes"))
    assert [r["id"] for r in got] == [1, 2, 3, 4, 5]
    params = [call.request.params for call in api_calls()]
    assert [(p["updated_since"], p["start"]) for p in params] == [
        ("2024-05-01T00:00:00Z", "0"),
        ("2024-06-01T10:00:00Z", "1"),
        ("2024-06-01T10:00:00Z", "2"),
        ("2024-06-02T08:00:00Z", "0"),
    ]
    assert all(p["limit"] == "500" and p["sort"] == "update_time ASC" for p in params)


@responses.activate
def test_v1_sorted_paging_reads_a_second_again_when_its_records_moved() -> None:
    """Note 2, read on the first page, is edited before the second is asked for: the
    notes of its second shift back by one, and the page at the offset no longer begins
    with note 3, the last one read. Paging on from there would skip note 4; the second is
    read again from its start instead, without the notes of it already sent."""
    ten = "2024-06-01 10:00:00"
    responses.get(
        f"{V1}/notes", json=v1_page([1, 2, 3], 0, True, ["2024-06-01 09:00:00", ten, ten])
    )
    responses.get(
        f"{V1}/notes", json=v1_page([4, 5, 2], 1, False, [ten, ten, "2024-06-03 12:00:00"])
    )
    responses.get(
        f"{V1}/notes", json=v1_page([3, 4, 5, 2], 0, False, [ten, ten, ten, "2024-06-03 12:00:00"])
    )
    got = records(make_stream("notes"))
    assert [(r["id"], r["update_time"][:10]) for r in got] == [
        (1, "2024-06-01"), (2, "2024-06-01"), (3, "2024-06-01"), (4, "2024-06-01"),
        (5, "2024-06-01"), (2, "2024-06-03"),
    ]  # fmt: skip
    params = [call.request.params for call in api_calls()]
    assert [(p["updated_since"], p["start"]) for p in params] == [
        ("2024-05-01T00:00:00Z", "0"),
        ("2024-06-01T10:00:00Z", "1"),
        ("2024-06-01T10:00:00Z", "0"),
    ]


def test_a_new_paginator_asked_where_a_list_ends_leaves_the_page_alone() -> None:
    """Pages read ahead by offsets are asked of a new paginator whether the list ends
    there, from the thread that fetched them, while the writer may be dropping their
    overlap record: that paginator must not put the page's records back. (It did, and
    a 100k backfill under latency sent 3 to 5 notes twice.)"""
    from tap_pipedrive.client import UpdateTimePaginator

    class WriterDropsTheOverlapMeanwhile(dict):
        """The page's body, whose first record the writer drops right after the
        paginator first reads the records."""

        def get(self, key: str, default: t.Any = None) -> t.Any:
            value = super().get(key, default)
            if key == "data" and value and value[0]["id"] == 1:
                self["data"] = value[1:]
            return value

    times = ["2024-06-01 10:00:00"] * 2 + ["2024-06-01 11:00:00"]
    response = requests.Response()
    response.status_code = 200
    response._pipedrive_payload = WriterDropsTheOverlapMeanwhile(v1_page([1, 2, 3], 0, True, times))
    assert UpdateTimePaginator(500, "update_time", "2024-05-01T00:00:00Z").get_next(response)
    assert [row["id"] for row in response._pipedrive_payload["data"]] == [2, 3]


@responses.activate
def test_v1_flat_pagination_of_leads_without_next_start() -> None:
    """Leads put `start`/`limit`/`more_items_in_collection` directly in additional_data."""

    def page(ids: list[str], start: int, more: bool) -> dict[str, t.Any]:
        flat = {"start": start, "limit": 500, "more_items_in_collection": more}
        data = [{"id": i, "update_time": "2024-06-01T10:00:00.000Z"} for i in ids]
        return {"success": True, "data": data, "additional_data": flat}

    responses.get(f"{V1}/leads", json=page(["a", "b"], 0, True))
    responses.get(f"{V1}/leads", json=page(["b", "c"], 1, False))
    got = records(make_stream("leads"))
    assert [r["id"] for r in got] == ["a", "b", "c"]
    assert api_calls()[1].request.params["start"] == "1"  # overlapping "b"


@responses.activate
def test_v1_data_null_on_first_page_is_an_empty_stream() -> None:
    responses.get(f"{V1}/notes", json=v1_page([], 0, False))
    assert records(make_stream("notes")) == []


@responses.activate
def test_unpaged_v1_endpoint_makes_one_request() -> None:
    responses.get(
        f"{V1}/currencies",
        json={"success": True, "data": [{"id": 1, "code": "EUR"}, {"id": 2, "code": "USD"}]},
    )
    assert [r["code"] for r in records(make_stream("currencies"))] == ["EUR", "USD"]
    assert len(api_calls()) == 1
    assert "start=" not in api_calls()[0].request.url


@pytest.mark.parametrize("status", [429, 500, 502, 503, 520, 524])
@responses.activate
def test_transient_statuses_are_retried(status: int) -> None:
    responses.get(
        f"{V2}/pipelines",
        status=status,
        json={"success": False, "error": "try later"},
        headers={"x-ratelimit-reset": "0"} if status == 429 else {},
    )
    responses.get(f"{V2}/pipelines", json=v2_page([7], None))
    assert [r["id"] for r in records(make_stream("pipelines"))] == [7]
    assert len(api_calls()) == 2


@responses.activate
def test_invalid_json_and_dropped_connections_are_retried() -> None:
    responses.get(f"{V2}/stages", body='{"success": true, "data": [{"id": 1')
    responses.get(f"{V2}/stages", body=requests.exceptions.ConnectionError("reset by peer"))
    responses.get(f"{V2}/stages", body=requests.exceptions.ReadTimeout("slow"))
    responses.get(f"{V2}/stages", json=v2_page([1], None))
    assert [r["id"] for r in records(make_stream("stages"))] == [1]
    assert len(api_calls()) == 4


@responses.activate
def test_429_waits_as_retry_after_says(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr("time.sleep", waits.append)
    responses.get(f"{V2}/pipelines", status=429, headers={"Retry-After": "3"})
    responses.get(f"{V2}/pipelines", json=v2_page([1], None))
    records(make_stream("pipelines"))
    assert waits and 3.0 <= waits[0] <= 3.5


@responses.activate
def test_429_hours_away_stops_with_one_line() -> None:
    responses.get(f"{V2}/pipelines", status=429, headers={"x-ratelimit-reset": "36000"})
    with pytest.raises(RateLimitError, match="daily API token budget"):
        records(make_stream("pipelines"))
    assert len(api_calls()) == 1


@responses.activate
def test_retries_are_bounded() -> None:
    responses.get(f"{V2}/pipelines", status=503, json={"success": False})
    with pytest.raises(Exception, match="503"):
        records(make_stream("pipelines"))
    assert len(api_calls()) == PipedriveStream.max_tries


@responses.activate
def test_401_stops_at_once_without_the_token_in_the_message() -> None:
    responses.get(
        f"{V2}/deals",
        status=401,
        json={"success": False, "error": "unauthorized access", "errorCode": 401},
    )
    with pytest.raises(AuthError) as raised:
        records(make_stream("deals"))
    message = str(raised.value)
    assert "rejected the API token" in message
    assert "\n" not in message and TOKEN not in message
    assert len(api_calls()) == 1


@responses.activate
def test_403_html_block_page_stops_at_once() -> None:
    responses.get(
        f"{V2}/deals",
        status=403,
        body="<html><body>Access denied</body></html>",
        content_type="text/html",
    )
    with pytest.raises(AccessError, match="block page"):
        records(make_stream("deals"))
    assert len(api_calls()) == 1


@responses.activate
def test_success_false_with_200_is_an_error_not_an_empty_page() -> None:
    responses.get(f"{V2}/deals", json={"success": False, "error": "Something broke"})
    with pytest.raises(ApiError, match="Something broke"):
        records(make_stream("deals"))


@responses.activate
def test_redirects_are_not_followed_with_the_token() -> None:
    responses.get(f"{V2}/deals", status=302, headers={"Location": "https://evil.test/steal"})
    with pytest.raises(ApiError, match="redirect"):
        records(make_stream("deals"))
    assert [call.request.url.split("?")[0] for call in api_calls()] == [f"{V2}/deals"]


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, ("https://api.pipedrive.com/v1", "https://api.pipedrive.com/api/v2")),
        ({"company_domain": "acme"}, ("https://acme.pipedrive.com/api/v1", "https://acme.pipedrive.com/api/v2")),
        ({"company_domain": "https://acme.pipedrive.com/"}, ("https://acme.pipedrive.com/api/v1", "https://acme.pipedrive.com/api/v2")),
        ({"api_url": "http://127.0.0.1:8080"}, ("http://127.0.0.1:8080/v1", "http://127.0.0.1:8080/api/v2")),
        ({"api_url": "https://acme.pipedrive.com/api/"}, ("https://acme.pipedrive.com/api/v1", "https://acme.pipedrive.com/api/v2")),
        ({"api_url": "https://api.pipedrive.com/v1"}, ("https://api.pipedrive.com/v1", "https://api.pipedrive.com/api/v2")),
        ({"api_url": "https://x.test", "company_domain": "acme"}, ("https://x.test/v1", "https://x.test/api/v2")),
    ],
)  # fmt: skip
def test_api_roots(config: dict[str, str], expected: tuple[str, str]) -> None:
    assert api_roots(config) == expected


@pytest.mark.parametrize(
    "config",
    [{"company_domain": "not a domain"}, {"api_url": "ftp://x"}, {"api_url": "api.pipedrive.com"}],
)
def test_bad_base_url_settings_are_rejected(config: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        api_roots(config)


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"api_key": ""}, "api_key"),
        ({"api_key": None, "api_token": None}, "api_key"),
        ({"start_date": "yesterday-ish"}, "start_date"),
        ({"start_date": "2999-01-01"}, "start_date"),
        ({"company_domain": "a b"}, "company_domain"),
        ({"api_url": "nope"}, "api_url"),
    ],
)
def test_bad_settings_stop_with_a_line_naming_them(config: dict[str, t.Any], named: str) -> None:
    with pytest.raises(ConfigError, match=named) as raised:
        TapPipedrive(config={**CONFIG, **config}, validate_config=True)
    assert "\n" not in str(raised.value)


@responses.activate
def test_api_token_alias_and_start_date_forms_are_accepted() -> None:
    mock_an_account_without_custom_fields(HOST)
    tap = TapPipedrive(
        config={"api_token": TOKEN, "start_date": "2024-05-01", "api_url": HOST},
        validate_config=True,
    )
    assert tap.config["start_date"] == "2024-05-01T00:00:00+00:00"
    assert all(call.request.headers["x-api-token"] == TOKEN for call in responses.calls)
    tap = TapPipedrive(
        config={"api_key": TOKEN, "start_date": "2024-05-01T02:00:00+02:00", "api_url": HOST},
        validate_config=True,
    )
    assert tap.config["start_date"] == "2024-05-01T00:00:00+00:00"


@responses.activate
def test_bookmark_in_another_format_is_compared_as_a_time() -> None:
    """A state saved as `...Z` (or by another tap) must not break the sorted-bookmark check."""
    responses.get(f"{V2}/deals", json=v2_page([1, 2], None))
    state = {
        "bookmarks": {
            "deals": {
                "replication_key": "update_time",
                "replication_key_value": "2024-06-01T09:00:00Z",
            }
        }
    }
    mock_an_account_without_custom_fields(HOST)
    tap = TapPipedrive(config=CONFIG, state=state, validate_config=True)
    tap.streams["deals"].selected = True
    tap.streams["deal_products"].selected = False
    out = io.StringIO()
    with redirect_stdout(out):
        tap.streams["deals"].sync()
    assert "updated_since=2024-06-01T09%3A00%3A00Z" in api_calls()[0].request.url
    states = [json.loads(line) for line in out.getvalue().splitlines() if '"STATE"' in line]
    final = states[-1]["value"]["bookmarks"]["deals"]["replication_key_value"]
    assert final == "2024-06-03T10:00:00+00:00"


def _sync_with_bookmark(name: str, bookmark: str) -> list[dict[str, t.Any]]:
    """Sync `name` alone from a saved bookmark; its output messages."""
    state = {"bookmarks": {name: {"replication_key": "update_time",
                                  "replication_key_value": bookmark}}}  # fmt: skip
    mock_an_account_without_custom_fields(HOST)
    tap = TapPipedrive(config=CONFIG, state=state, validate_config=True)
    for stream in tap.streams.values():
        stream.selected = stream.name == name
    out = io.StringIO()
    with redirect_stdout(out):
        tap.streams[name].sync()
    return [json.loads(line) for line in out.getvalue().splitlines()]


@responses.activate
def test_a_record_earlier_in_the_bookmarks_second_is_sent_again_not_a_crash() -> None:
    """Leads carry milliseconds. The bookmark is the last lead sent (`...:01.664Z`), the
    filter takes whole seconds, so a lead of that second sent before (`...:01.076Z`) comes
    again: the SDK's sort check took it for unsorted data, and every later run stopped
    with a traceback at leads, the streams after it never synced again."""
    times = ["2024-06-01T10:00:01.076Z", "2024-06-01T10:00:01.664Z", "2024-06-01T10:00:02.005Z"]
    responses.get(f"{V1}/leads", json=v1_page(["a", "b", "c"], 0, False, times))
    messages = _sync_with_bookmark("leads", "2024-06-01T10:00:01.664000+00:00")
    assert "updated_since=2024-06-01T10%3A00%3A01Z" in api_calls()[0].request.url
    assert [m["record"]["id"] for m in messages if m["type"] == "RECORD"] == ["a", "b", "c"]
    final = [m for m in messages if m["type"] == "STATE"][-1]["value"]["bookmarks"]["leads"]
    assert final["replication_key_value"] == "2024-06-01T10:00:02.005000+00:00"


@responses.activate
def test_a_page_not_sorted_as_asked_is_written_whole_not_a_crash(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An API that answers `sort=update_time ASC` with later records first (an
    independent fake did, for leads edited after the bookmark): every record is written,
    the bookmark is the latest time, one warning names the stream. The SDK's sort check
    stopped the run with a traceback, and every later run at the same stream."""
    later = "2024-06-02T20:36:01Z"
    times = [later, later, "2024-06-01T10:00:01.664Z", "2024-06-01T10:00:02.005Z"]
    page = v1_page(["new1", "new2", "a", "b"], 0, False, times)
    responses.get(f"{V1}/leads", json=page)
    messages = _sync_with_bookmark("leads", "2024-06-01T10:00:01.664000+00:00")
    sent = [m["record"]["id"] for m in messages if m["type"] == "RECORD"]
    assert sent == ["new1", "new2", "a", "b"]
    final = [m for m in messages if m["type"] == "STATE"][-1]["value"]["bookmarks"]["leads"]
    assert final["replication_key_value"] == "2024-06-02T20:36:01+00:00"
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert [w for w in warnings if "not sorted by update time" in w] == [
        "leads: Pipedrive sent a record updated at 2024-06-01T10:00:01.664000+00:00 after a "
        "later one, not sorted by update time as asked: written as it came; the bookmark "
        "moves once the list is read to its end"
    ]


@responses.activate
def test_after_a_page_not_sorted_as_asked_a_stopped_run_keeps_the_bookmark_it_began_at() -> None:
    """Records older than the latest one read may still come on the next page: a STATE
    written before the list is read to its end (here a stop on the second page) holds the
    bookmark the run began at, not the latest time read, which skipped the second page's
    records in the resumed run (a review's case)."""
    page = v1_page(["new1", "a"], 0, True, ["2024-06-02T20:36:01Z", "2024-06-01T10:00:03Z"])
    at = matchers.query_param_matcher
    responses.get(f"{V1}/leads", json=page, match=[at({"start": "0"}, strict_match=False)])
    reset = requests.exceptions.ConnectionError("reset by peer")
    responses.get(f"{V1}/leads", body=reset, match=[at({"start": "2"}, strict_match=False)])
    bookmark = {"replication_key": "update_time", "replication_key_value": "2024-06-01T10:00:00Z"}
    state = {"bookmarks": {"leads": bookmark}}
    mock_an_account_without_custom_fields(HOST)
    tap = TapPipedrive(config=CONFIG, state=state, validate_config=True)
    for stream in tap.streams.values():
        stream.selected = stream.name == "leads"
    out = io.StringIO()
    with redirect_stdout(out), pytest.raises(requests.exceptions.ConnectionError):
        tap.sync_all()  # the CLI turns it into one line
    messages = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [m["record"]["id"] for m in messages if m["type"] == "RECORD"] == ["new1", "a"]
    saved = [m for m in messages if m["type"] == "STATE"][-1]["value"]["bookmarks"]["leads"]
    assert saved["replication_key_value"] == "2024-06-01T10:00:00Z"  # as it began


@responses.activate
def test_v2_records_with_milliseconds_under_the_bookmark_are_sent_again_not_a_crash() -> None:
    """The same for a v2 list whose times carry milliseconds (RFC 3339 allows them)."""
    data = [{"id": 1, "update_time": "2024-06-01T10:00:01.076Z"},
            {"id": 2, "update_time": "2024-06-01T10:00:03.100Z"}]  # fmt: skip
    responses.get(f"{V2}/deals", json={"success": True, "data": data, "additional_data": {}})
    messages = _sync_with_bookmark("deals", "2024-06-01T10:00:01.664000+00:00")
    assert [m["record"]["id"] for m in messages if m["type"] == "RECORD"] == [1, 2]
    final = [m for m in messages if m["type"] == "STATE"][-1]["value"]["bookmarks"]["deals"]
    assert final["replication_key_value"] == "2024-06-01T10:00:03.100000+00:00"


def test_a_window_after_a_page_skips_every_record_of_its_first_second() -> None:
    """A window begins at the page's last record (`...:05.900`) but is asked from its whole
    second: the records of that second read on the page, whatever their milliseconds,
    are not read twice (a second copy of `...:05.200` also stopped the run as unsorted)."""
    from tap_pipedrive.pipeline import TimeWindows

    times = [dt.datetime(2024, 6, 1, 10, 0, s, ms * 1000, tzinfo=dt.timezone.utc)
             for s, ms in ((3, 0), (4, 500), (5, 200), (5, 900))]  # fmt: skip
    until = dt.datetime(2024, 7, 1, tzinfo=dt.timezone.utc)
    windows = TimeWindows.after_page(times, [1, 2, 3, 4], until, target=400)
    window = windows.next()
    assert window is not None and set(window.skip_ids) == {3, 4}


def _at(second: int, ms: int = 0) -> str:
    """A v2 update time `second` s after 2024-06-01 10:00, with milliseconds if any."""
    base = dt.datetime(2024, 6, 1, 10, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=second)
    return base.strftime("%Y-%m-%dT%H:%M:%S") + (f".{ms:03d}Z" if ms else "Z")


def _parsed(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _page_then(page: list[dict], after: list[dict]) -> t.Callable[..., t.Any]:
    """A server whose list begins with `page` (then a cursor) and whose records updated
    at or after any later `updated_since` are `after`."""

    def answer(params: dict[str, str]) -> tuple[list, str | None]:
        if params.get("sort_direction") == "desc":
            return [after[-1]], None
        if "cursor" not in params and params["updated_since"].startswith("2024-05-01"):
            return page, "c1"
        since = _parsed(params["updated_since"])
        return [row for row in after if _parsed(row["update_time"]) >= since], None

    return answer


def _deals_in_windows(monkeypatch: pytest.MonkeyPatch, answer: t.Callable[..., t.Any]) -> list:
    """Deals read as update-time windows (pages of 4, several in flight), from a server
    that answers each request with `answer(params)` -> (rows, next cursor)."""
    from tap_pipedrive.client import PipedriveV2Stream

    monkeypatch.setattr(PipedriveV2Stream, "splits_pay_off", lambda self: True)
    monkeypatch.setattr(PipedriveV2Stream, "page_size", 4)

    def callback(request: t.Any) -> tuple[int, dict[str, str], str]:
        rows, cursor = answer(request.params)
        body = {"success": True, "data": rows, "additional_data": {"next_cursor": cursor}}
        return 200, {"x-ratelimit-limit": "80"}, json.dumps(body)

    mock_an_account_without_custom_fields(HOST)
    responses.add_callback(responses.GET, f"{V2}/deals", callback=callback)
    stream = make_stream("deals", max_concurrent_requests=4)
    return records(stream)


@responses.activate
@pytest.mark.parametrize("ms", [False, True])
def test_a_record_of_the_pages_last_second_edited_before_its_window_is_read_again(
    monkeypatch: pytest.MonkeyPatch, ms: bool
) -> None:
    """The window after a page skips the records of the page's last second read there; one
    of them edited meanwhile (to a later second) is its new version, and must be read: it
    was dropped by id, and the next record's time carried the bookmark past the edit."""
    page = [{"id": 1, "update_time": _at(1)}, {"id": 2, "update_time": _at(2)},
            {"id": 3, "update_time": _at(5, 200 if ms else 0)},
            {"id": 4, "update_time": _at(5, 900 if ms else 0)}]  # fmt: skip
    after = [page[3], {"id": 5, "update_time": _at(6)}, {"id": 3, "update_time": _at(7)},
             {"id": 6, "update_time": _at(8)}]  # fmt: skip

    got = [
        (r["id"], r["update_time"]) for r in _deals_in_windows(monkeypatch, _page_then(page, after))
    ]
    assert (3, _at(7)) in got
    assert [i for i, _ in got].count(4) == 1


@responses.activate
def test_a_record_edited_within_its_second_before_its_window_is_read_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With milliseconds, an edit can stay within the second (`:05.200` to `:05.950`): the
    record is no longer the one read on the page, and was skipped as if it were."""
    page = [{"id": 1, "update_time": _at(1)}, {"id": 2, "update_time": _at(2)},
            {"id": 3, "update_time": _at(5, 200)},
            {"id": 4, "update_time": _at(5, 900)}]  # fmt: skip
    after = [page[3], {"id": 3, "update_time": _at(5, 950)}, {"id": 5, "update_time": _at(6)},
             {"id": 6, "update_time": _at(8)}]  # fmt: skip

    got = [
        (r["id"], r["update_time"]) for r in _deals_in_windows(monkeypatch, _page_then(page, after))
    ]
    assert (3, _at(5, 950)) in got
    assert [i for i, _ in got].count(4) == 1


@responses.activate
def test_windows_begun_inside_a_second_lose_no_record_between_their_bounds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A window began at the page's last record, milliseconds and all, and ended whole
    seconds later; the query takes seconds, so the next window was asked from the second
    its predecessor's end fell in, and dropped the records before its exact start."""
    page = [{"id": 1, "update_time": _at(1)}, {"id": 2, "update_time": _at(2)},
            {"id": 3, "update_time": _at(3)}, {"id": 4, "update_time": _at(5, 900)}]  # fmt: skip
    rest = [{"id": 10 + k, "update_time": _at(6 + 7 * k, (k * 137) % 1000)} for k in range(300)]
    rows = page + rest

    def parse(text: str) -> dt.datetime:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))

    def answer(params: dict[str, str]) -> tuple[list, str | None]:
        if params.get("sort_direction") == "desc":
            return [rows[-1]], None
        since = parse(params["updated_since"])
        until = parse(params["updated_until"]) if "updated_until" in params else None
        inside = [r for r in rows if since <= parse(r["update_time"])]
        inside = [r for r in inside if until is None or parse(r["update_time"]) < until]
        start = int(params.get("cursor") or 0)
        more = start + 4 < len(inside)
        return inside[start : start + 4], str(start + 4) if more else None

    got = [r["id"] for r in _deals_in_windows(monkeypatch, answer)]
    assert sorted(got) == sorted(r["id"] for r in rows)


@responses.activate
def test_v1_list_without_paging_data_pages_until_a_short_page(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Mail threads document no `additional_data`: a full page means another may follow."""
    monkeypatch.setattr("tap_pipedrive.streams.mail.MailThreadsStream.page_size", 2)
    monkeypatch.setattr(
        "tap_pipedrive.streams.mail.MailThreadsStream.partitions", [{"folder": "inbox"}]
    )
    responses.get(
        f"{V1}/mailbox/mailThreads", json={"success": True, "data": [{"id": 1}, {"id": 2}]}
    )
    responses.get(f"{V1}/mailbox/mailThreads", json={"success": True, "data": [{"id": 3}]})
    stream = make_stream("mail_threads")
    stream._write_starting_replication_value({"folder": "inbox"})
    got = list(stream.get_records({"folder": "inbox"}))
    assert [r["id"] for r in got] == [1, 2, 3]
    params = [call.request.params for call in api_calls()]
    assert [(p["folder"], p["start"], p["limit"]) for p in params] == [
        ("inbox", "0", "2"),
        ("inbox", "2", "2"),
    ]


@responses.activate
def test_deletions_come_from_recents_within_its_one_month_window() -> None:
    mock_an_account_without_custom_fields(HOST)
    responses.replace(
        responses.GET,
        f"{V1}/recents",
        json={
            "success": True,
            "data": [
                {"item": "note", "id": 8, "data": {"id": 8, "active_flag": False,
                                                   "update_time": "2026-11-20 08:00:00"}},
                {"item": "note", "id": 9, "data": {"id": 9, "active_flag": True}},
            ],
            "additional_data": {"pagination": {"more_items_in_collection": False}},
        },
    )  # fmt: skip
    responses.get(f"{V1}/notes", json=v1_page([1], 0, False))
    bookmark = {"replication_key": "update_time", "replication_key_value": "2024-06-01T00:00:00Z"}
    state = {"bookmarks": {"notes": bookmark, "persons": dict(bookmark)}}
    tap = TapPipedrive(config=CONFIG, state=state, validate_config=True)
    got = records(t.cast(PipedriveStream, tap.streams["notes"]))
    assert [(r["id"], r.get("_sdc_deleted_at")) for r in got] == [
        (1, None),
        (8, "2026-11-20T08:00:00+00:00"),
    ]
    recents = [c.request for c in responses.calls if "/recents" in c.request.url]
    [request] = recents
    since = dt.datetime.strptime(request.params["since_timestamp"], "%Y-%m-%d %H:%M:%S")
    month_ago = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(days=30)
    assert dt.timedelta(0) < since - month_ago < dt.timedelta(minutes=10)
    # One read for every selected stream with deletions: notes among them.
    assert "items" not in request.params  # several types: none named, the tap keeps its own
    deletions = {"activity", "file", "note", "organization", "person", "product"}
    assert tap.recent_changes().items == deletions


@responses.activate
def test_a_first_sync_flags_the_deletions_recents_lists() -> None:
    """No bookmark: the target may still hold the rows (a cleared state, a full refresh
    into tables that are merged into), so the deletions `/v1/recents` still lists (its
    last month) are flagged on a first sync too."""
    mock_an_account_without_custom_fields(HOST)
    responses.replace(
        responses.GET,
        f"{V1}/recents",
        json={"success": True,
              "data": [{"item": "note", "id": 8, "data": {"id": 8, "active_flag": False,
                                                          "update_time": "2026-11-20 08:00:00"}}],
              "additional_data": {"pagination": {"more_items_in_collection": False}}},
    )  # fmt: skip
    responses.get(f"{V1}/notes", json=v1_page([1], 0, False))
    got = records(make_stream("notes"))
    assert [(r["id"], r.get("_sdc_deleted_at")) for r in got] == [
        (1, None),
        (8, "2026-11-20T08:00:00+00:00"),
    ]


@pytest.mark.parametrize(
    ("pipedrive", "emitted"),
    [
        ("2024-05-01 10:20:00", "2024-05-01T10:20:00+00:00"),  # v1, UTC without a zone
        ("2024-05-01T10:20:00.000Z", "2024-05-01T10:20:00+00:00"),  # leads
        ("2024-05-01T10:20:00.123Z", "2024-05-01T10:20:00.123000+00:00"),
        ("2024-05-01T10:20:00Z", "2024-05-01T10:20:00+00:00"),  # v2
        ("2024-05-01T12:20:00+02:00", "2024-05-01T10:20:00+00:00"),
        ("", None),
        ("not a time", "not a time"),
    ],
)
def test_every_pipedrive_timestamp_format_becomes_rfc3339_utc(
    pipedrive: str, emitted: str | None
) -> None:
    from tap_pipedrive.timeutil import to_rfc3339

    assert to_rfc3339(pipedrive) == emitted


def test_canonical_timestamps_sort_as_strings_in_time_order() -> None:
    """The SDK compares bookmarks as strings: the canonical form must order like time."""
    from tap_pipedrive.timeutil import to_rfc3339

    raw = ["2024-05-01 10:20:01", "2024-05-01T10:20:00.5Z", "2024-05-01T10:20:00Z",
           "2024-05-01T09:20:00.999Z", "2024-04-30T23:59:59+00:00"]  # fmt: skip
    canonical = [to_rfc3339(value) for value in raw]
    assert sorted(canonical) == canonical[::-1]


@responses.activate
def test_a_spent_window_holds_every_request_until_its_reset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`x-ratelimit-remaining: 0` (another client of the token, or arrivals bunched on the
    way): the next request, whatever thread sends it, waits for the window's reset instead of
    collecting a 429; and the margin kept spare grows by one."""
    clock = [100.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock[0] += seconds

    monkeypatch.setattr("tap_pipedrive.pacing.time.monotonic", lambda: clock[0])
    monkeypatch.setattr("tap_pipedrive.pacing.time.sleep", sleep)
    monkeypatch.setattr(PipedriveStream, "backoff_max_seconds", 60.0)
    spent = {"x-ratelimit-limit": "40", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "2"}
    responses.get(f"{V2}/deals", json=v2_page([1], "c2"), headers=spent)
    responses.get(f"{V2}/deals", json=v2_page([2], None), headers={"x-ratelimit-remaining": "39"})
    stream = make_stream("deals")
    assert [r["id"] for r in records(stream)] == [1, 2]
    assert waits == [pytest.approx(2.0)]
    assert stream._tap.pacer.headroom == 3  # type: ignore[attr-defined]


def test_a_window_spent_by_the_taps_own_requests_holds_two_slots_not_the_reset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The tap sent as many requests as it allows a window, evenly, and the server counts
    its window spent (they arrived bunched): the rolling window has room again a slot
    later, so every thread waits two slots, not the whole reset (which idled the wire 2 s
    of a 26 s backfill); the margin grows by one all the same."""
    from tap_pipedrive.pacing import Pacer

    clock = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    monkeypatch.setattr("tap_pipedrive.pacing.time.monotonic", lambda: clock[0])
    monkeypatch.setattr("tap_pipedrive.pacing.time.sleep", sleep)
    pacer = Pacer()
    pacer.learn({"x-ratelimit-limit": "40"})  # 38 a window: one every 2/38 s
    for _ in range(60):
        pacer.wait_for_slot()
    interval = 2 / 38
    assert pacer.window_spent(2.0) == pytest.approx(2 * interval)
    assert pacer.headroom == 3
    slept.clear()
    pacer.wait_for_slot()
    assert sum(slept) == pytest.approx(2 * interval, abs=0.01)

    idle = Pacer()  # the tap sent little: another client of the token spends the window
    idle.learn({"x-ratelimit-limit": "40"})
    idle.wait_for_slot()
    assert idle.window_spent(2.0) == 2.0


def test_a_token_shared_with_another_client_gets_a_share_of_its_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another integration spends the same token's window: the tap kept sending at the
    whole limit after each 429 (92 of 437 requests were 429s against an independent fake
    with another client at half the limit; Pipedrive blocks a client that keeps doing
    that). A 429 halves the tap's share, once in two windows however many answers tell
    it; a window spent by others cuts it by a quarter; it grows back by two requests a
    window without either, up to the whole limit less the margin."""
    from tap_pipedrive.pacing import Pacer

    clock = [100.0]
    monkeypatch.setattr("tap_pipedrive.pacing.time.monotonic", lambda: clock[0])
    pacer = Pacer()
    pacer.learn({"x-ratelimit-limit": "40"})
    assert pacer.allowed == 38
    for _ in range(200):  # alone on the token: nothing cuts
        pacer.answered()
    assert pacer.allowed == 38
    pacer.congested(0.5)
    pacer.congested(0.5)  # the same crowding, told by another answer: no second cut
    assert pacer.allowed == 19
    assert pacer.interval == pytest.approx(2 / 19)
    pacer.answered()
    assert pacer.allowed == 19
    clock[0] += 2.0  # a window later: two requests more
    pacer.answered()
    assert pacer.allowed == 21
    clock[0] += 2.5
    pacer.window_spent(2.0)  # spent with few of its own requests in it: others
    assert pacer.allowed == 15  # 21 x 0.75
    clock[0] += 60.0
    pacer.answered()
    assert pacer.allowed == 38 - 1  # back to the whole limit, less the margin grown by one


def test_the_margin_grows_with_each_spent_window_up_to_a_tenth_of_the_limit() -> None:
    from tap_pipedrive.pacing import Pacer

    pacer = Pacer()
    pacer.learn({"x-ratelimit-limit": "40"})
    assert pacer.interval == pytest.approx(2 / 38)  # 2 kept spare
    for _ in range(5):
        pacer.hold(0.0)
    assert pacer.interval == pytest.approx(2 / 36)  # 4 at most: a tenth of 40


def test_pacer_spaces_requests_by_the_burst_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from tap_pipedrive.pacing import Pacer

    clock = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    monkeypatch.setattr("tap_pipedrive.pacing.time.monotonic", lambda: clock[0])
    monkeypatch.setattr("tap_pipedrive.pacing.time.sleep", sleep)
    pacer = Pacer()
    pacer.wait_for_slot()  # nothing learnt yet: no wait
    pacer.learn({"x-ratelimit-limit": "42"})  # 42 a 2 s window, 2 kept spare: one every 50 ms
    pacer.wait_for_slot()
    pacer.wait_for_slot()
    clock[0] += 1.0  # a slow response: the slot is long past
    pacer.wait_for_slot()
    assert slept == [pytest.approx(0.05)]


def test_pacer_counts_the_requests_sent_before_it_knew_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The run's first requests leave together, before any answer tells the limit (field
    definitions, the first pages): they count in the window once it is known, or the
    paced ones after them would crowd it (a 429 at 20 a window, Pipedrive's lowest)."""
    from tap_pipedrive.pacing import Pacer

    clock = [100.0]
    monkeypatch.setattr("tap_pipedrive.pacing.time.monotonic", lambda: clock[0])
    monkeypatch.setattr(
        "tap_pipedrive.pacing.time.sleep", lambda seconds: clock.__setitem__(0, clock[0] + seconds)
    )
    pacer = Pacer()
    sent = []
    for _ in range(15):
        pacer.wait_for_slot()
        sent.append(clock[0])
    pacer.learn({"x-ratelimit-limit": "20"})  # 18 a window, 2 kept spare
    for _ in range(10):
        pacer.wait_for_slot()
        sent.append(clock[0])
    assert sum(1 for at in sent if at < 102.0) == 18
    assert all(at >= 102.0 for at in sent[18:])


def test_pacer_never_lets_late_wakeups_crowd_a_burst_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Threads that wake late from their waits would send closer together than the
    schedule says: what leaves in any window stays within the limit less its margin."""
    import itertools
    import threading

    from tap_pipedrive import pacing

    window = 1.0  # seconds, for a short test; Pipedrive's is 2
    monkeypatch.setattr(pacing, "BURST_WINDOW_SECONDS", window)
    lateness = itertools.cycle([0.3] + [0.0] * 9)  # every tenth wait overruns by 300 ms
    idle = threading.Event()  # a real wait: `time.sleep` is a no-op in this module's tests
    monkeypatch.setattr(pacing.time, "sleep", lambda s: idle.wait(s + next(lateness)))
    pacer = pacing.Pacer()
    pacer.learn({"x-ratelimit-limit": "40"})
    sent: list[float] = []

    def send_some() -> None:
        for _ in range(12):
            pacer.wait_for_slot()
            sent.append(time.monotonic())

    threads = [threading.Thread(target=send_some) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    allowed = 40 - pacing.HEADROOM
    measured_late = 0.02  # a thread may be switched out before it notes the time
    most_in_a_window = max(
        sum(1 for at in sent if start <= at < start + window - measured_late) for start in sent
    )
    assert most_in_a_window <= allowed
    assert (max(sent) - min(sent)) < len(sent) / allowed * window * 1.5  # and not slow


def test_pacer_keeps_as_many_requests_in_flight_as_the_round_trip_needs() -> None:
    from tap_pipedrive.pacing import Pacer

    pacer = Pacer()
    pacer.learn({"x-ratelimit-limit": "42"})  # 20 requests/s
    pacer.observe_round_trip(0.3)  # 0.3 s away: 6 in flight reach 20/s
    assert pacer.requests_to_keep_in_flight(8) == 6
    assert pacer.requests_to_keep_in_flight(4) == 4  # never more than the setting
    pacer.observe_round_trip(0.005)  # a server next door: one at a time is enough
    assert pacer.requests_to_keep_in_flight(8) == 1


def test_pacer_takes_the_shortest_round_trip_not_the_time_requests_queue() -> None:
    """A busy server sharing its time among the requests in flight answers each later the
    more there are: the round trip that counts is the shortest, not the average."""
    from tap_pipedrive.pacing import Pacer

    pacer = Pacer()
    pacer.learn({"x-ratelimit-limit": "42"})  # 20 requests/s
    pacer.observe_round_trip(0.045)  # alone: one at a time is enough
    for _ in range(20):
        pacer.observe_round_trip(0.3)  # eight at once, each waiting for the others
    assert pacer.requests_to_keep_in_flight(8) == 1


@responses.activate
def test_missing_fields_and_recents_endpoints_degrade_without_losing_records(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A proxy or API without `*Fields` or `/recents` (404): the streams whose custom
    fields cannot be named are skipped, bookmark kept (not sent under 40-character keys);
    the others go on, without the deletions `/recents` would have flagged."""
    for url in field_definition_urls(HOST):
        responses.get(url, status=404, json={"success": False, "error": "x"})
    responses.get(f"{V1}/recents", status=404, json={"success": False, "error": "not found"})
    record = {"id": 1, "update_time": "2024-06-01T10:00:00Z", "custom_fields": {"a" * 40: 5}}
    persons = responses.get(
        f"{V2}/persons",
        json={"success": True, "data": [record], "additional_data": {"next_cursor": None}},
    )
    responses.get(f"{V1}/notes", json=v1_page([1, 2], 0, False))
    tap = TapPipedrive(config=CONFIG, validate_config=True)
    assert records(t.cast(PipedriveStream, tap.streams["persons"])) == []
    assert persons.call_count == 0 and "Stream 'persons' skipped" in caplog.text
    assert [r["id"] for r in records(t.cast(PipedriveStream, tap.streams["notes"]))] == [1, 2]


@responses.activate
def test_unsorted_keyset_page_keeps_the_original_filter() -> None:
    """Should a server ignore `sort`, restarting at the last record's time would skip the
    earlier records not yet read: page on by offsets under the original filter instead."""
    from tap_pipedrive.client import UpdateTimePaginator

    unsorted = ["2024-06-03 10:00:00", "2024-06-01 10:00:00", "2024-06-02 10:00:00"]
    responses.get(f"{V1}/notes", json=v1_page([1, 2, 3], 0, True, unsorted))
    response = requests.get(f"{V1}/notes", timeout=5)
    paginator = UpdateTimePaginator(500, "update_time", "2024-05-01T00:00:00Z")
    assert paginator.get_next(response) == ("2024-05-01T00:00:00Z", 3)


@responses.activate
def test_newest_first_paging_reads_on_when_the_page_is_not_sorted() -> None:
    import datetime as _dt

    from tap_pipedrive.client import NewestFirstPaginator

    since = _dt.datetime(2024, 6, 2, tzinfo=_dt.timezone.utc)
    old_first = ["2024-05-01 10:00:00", "2024-06-05 10:00:00"]
    responses.get(f"{V1}/files", json=v1_page([1, 2], 0, True, old_first))
    paginator = NewestFirstPaginator(2, "update_time", since, on_moved=lambda: None)
    # The next page overlaps this one by its last record: offset 1, not 2.
    assert paginator.get_next(requests.get(f"{V1}/files", timeout=5)) == 1
    assert paginator.since is None
    newest_first = ["2024-06-05 10:00:00", "2024-05-01 10:00:00"]
    responses.replace(responses.GET, f"{V1}/files", json=v1_page([1, 2], 0, True, newest_first))
    paginator = NewestFirstPaginator(2, "update_time", since, on_moved=lambda: None)
    assert paginator.get_next(requests.get(f"{V1}/files", timeout=5)) is None


@responses.activate
def test_records_come_in_ahead_of_the_overlap_record_are_not_a_move() -> None:
    """Newest first, a file uploaded or edited while the list is paged goes to its top and
    shifts the rest down: the page then holds records already read before the one it
    should begin with. Those are dropped with it, nothing was passed over, and the list
    is not reported moved (which would hold the bookmark back for nothing)."""
    from tap_pipedrive.client import OverlappingOffsetPaginator, payload_of

    moved: list[bool] = []
    paginator = OverlappingOffsetPaginator(3, on_moved=lambda: moved.append(True))
    emitted: list[int] = []
    pages = [v1_page([9, 8, 7], 0, True), v1_page([8, 7, 6], 2, True), v1_page([6, 5], 4, False)]
    for number, body in enumerate(pages):  # page 2: 10 uploaded, 8 and 7 shifted down
        responses.get(f"{V1}/files?page={number}", json=body)
        response = requests.get(f"{V1}/files?page={number}", timeout=5)
        paginator.advance(response)
        emitted += [row["id"] for row in payload_of(response)["data"]]
    assert emitted == [9, 8, 7, 6, 5]
    assert not moved


@responses.activate
def test_offset_pages_overlap_by_a_record_and_tell_when_the_list_moved() -> None:
    """Each next page is asked to begin with the last record read, which is dropped from
    it; a page that begins with another record means the list moved under the reader (a
    record before it deleted or edited): a record may have slid past the offset unread."""
    from tap_pipedrive.client import OverlappingOffsetPaginator, payload_of

    moved: list[bool] = []
    paginator = OverlappingOffsetPaginator(3, on_moved=lambda: moved.append(True))
    pages = [
        (v1_page([1, 2, 3], 0, True), 2),  # next: offset 2, expected to begin with 3
        (v1_page([3, 4, 5], 2, True), 4),  # as expected: 3 dropped
        (v1_page([6, 7, 8], 4, True), 6),  # 5 was expected: the list moved
        (v1_page([8, 9], 6, False), None),
    ]
    emitted: list[int] = []
    for number, (body, token) in enumerate(pages):
        responses.get(f"{V1}/files?page={number}", json=body)
        response = requests.get(f"{V1}/files?page={number}", timeout=5)
        paginator.advance(response)
        assert paginator.current_value == token or paginator.finished
        emitted += [row["id"] for row in payload_of(response)["data"]]
        assert moved == ([True] if number >= 2 else [])
    assert emitted == [1, 2, 3, 4, 5, 6, 7, 8, 9]


@responses.activate
@pytest.mark.parametrize("concurrency", [1, 8, 32])
def test_a_stream_keeps_a_connection_open_for_every_request_it_may_have_in_flight(
    concurrency: int,
) -> None:
    """requests keeps 10 connections a host: with more in flight it opened a connection for
    each request and warned as it discarded it."""
    from tap_pipedrive.pipeline import SPARE_ON_WIRE

    stream = make_stream("deals", max_concurrent_requests=concurrency)
    adapter = stream.requests_session.get_adapter(f"{V2}/deals")
    kept = adapter.poolmanager.connection_pool_kw["maxsize"]  # type: ignore[attr-defined]
    assert kept >= max(10, concurrency + SPARE_ON_WIRE + 1)  # +1: the list's newest record


@responses.activate
def test_a_child_whose_parent_was_deleted_since_it_was_listed_is_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A 404 on a path that names a record (a deal's participants) means that record is
    gone: the child is skipped with a warning, the run goes on. A 404 on a list is not
    that, and still stops the run."""
    stream = make_stream("deal_participants")
    responses.get(
        f"{V1}/deals/7/participants",
        status=404,
        json={"success": False, "error": "Deal not found", "data": None},
    )
    responses.get(f"{V1}/deals/8/participants", json=v1_page([1, 2], 0, False))
    assert list(stream.get_records({"deal_id": 7})) == []
    assert "Deal not found" in caplog.text and "skipped" in caplog.text
    assert [r["id"] for r in stream.get_records({"deal_id": 8})] == [1, 2]


@responses.activate
@pytest.mark.parametrize("status", [403, 404, 410])
def test_a_list_refused_at_its_first_page_skips_its_stream_not_the_run(
    status: int, caplog: pytest.LogCaptureFixture
) -> None:
    """A plan without the feature (goals, projects) or a user who may not read it: the
    stream is skipped with one warning naming it and the answer, its other partitions
    are not requested, the other streams go on; it is named again at the end of the run."""
    goals = make_stream("goals")
    refused = responses.get(
        f"{V1}/goals/find", status=status, json={"success": False, "error": "No"}
    )
    responses.get(f"{V1}/users", json=v1_page([1, 2], 0, False))
    assert [r for part in goals.partitions or [] for r in goals.get_records(part)] == []
    assert refused.call_count == 1 and caplog.text.count("Stream 'goals' skipped") == 1
    assert f"Pipedrive answered {status}" in caplog.text or "403 Forbidden" in caplog.text
    tap = goals._tap
    assert [r["id"] for r in records(t.cast(PipedriveStream, tap.streams["users"]))] == [1, 2]
    tap._report_unavailable()  # type: ignore[attr-defined]
    assert "1 selected stream(s) skipped, refused by Pipedrive: goals" in caplog.text


@responses.activate
def test_a_list_refused_when_nothing_answered_stops_the_run() -> None:
    """Every request refused is a wrong api_url or a token that may not use the API, not
    a feature the account lacks: the run ends non-zero with one line."""
    for url in [*field_definition_urls(HOST), f"{V1}/users"]:
        responses.get(url, status=404, json={"success": False, "error": "Unknown method"})
    tap = TapPipedrive(config=CONFIG, validate_config=True)
    assert records(t.cast(PipedriveStream, tap.streams["users"])) == []
    with pytest.raises(ApiError, match=r"404 .*no request of this run succeeded: check api_url"):
        tap._report_unavailable()


@responses.activate
def test_a_list_refused_after_its_first_page_stops_the_run() -> None:
    """Skipping the rest of a list begun would leave a gap behind the bookmark."""
    persons = make_stream("persons")
    responses.get(f"{V2}/persons", json=v2_page([1, 2], "c2"))
    responses.get(
        f"{V2}/persons",
        status=403,
        json={"success": False, "error": "Forbidden"},
        match=[matchers.query_param_matcher({"cursor": "c2"}, strict_match=False)],
    )
    with pytest.raises(ApiError, match="403"):
        records(persons)


def test_no_such_host_is_told_from_a_resolver_or_network_failing_for_now() -> None:
    import socket

    from urllib3.exceptions import MaxRetryError, NameResolutionError

    from tap_pipedrive.client import no_such_host

    def failure(errno: int) -> requests.exceptions.ConnectionError:
        try:
            try:
                raise socket.gaierror(errno, "resolver says")
            except socket.gaierror as cause:
                raise NameResolutionError("x.example", None, cause) from cause  # type: ignore[arg-type]
        except NameResolutionError as resolution:
            return requests.exceptions.ConnectionError(MaxRetryError(None, "/", resolution))  # type: ignore[arg-type]

    assert no_such_host(failure(socket.EAI_NONAME))
    assert not no_such_host(failure(socket.EAI_AGAIN))  # the resolver failed for now
    assert not no_such_host(requests.exceptions.ConnectionError(ConnectionRefusedError()))


@responses.activate
@pytest.mark.parametrize("moves", [1, 99])
def test_recents_is_read_again_when_it_moves_while_it_is_read(moves: int) -> None:
    """`/v1/recents` is paged by offsets, oldest first, and an edit sends its row to the
    end: the row at the next page's start slides under the offset. Were it the only stage
    change, stages would be skipped as unchanged. A page that does not begin with the last
    row read shows the move: the listing is read again, and if it keeps moving, no stream
    is skipped as unchanged."""
    import json as _json
    import urllib.parse

    from tap_pipedrive.recents import reach_floor

    tap = make_stream("stages")._tap  # type: ignore[attr-defined]
    at = "2026-12-01 08:00:00"
    activities = [{"item": "activity", "id": i, "data": {"id": i, "update_time": at}}
                  for i in range(1, 501)]  # fmt: skip
    stage = {"item": "stage", "id": 7, "data": {"id": 7, "update_time": at}}
    reads: list[int] = []

    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.url or "").query)
        start = int(query.get("start", ["0"])[0])
        if start == 0:
            reads.append(1)
            rows, more = activities, True
        elif len(reads) <= moves:  # activities 1 and 2 edited: moved to the end, behind
            rows, more = activities[:2], False  # the stage, which slid under the offset
        else:
            rows, more = [activities[-1], stage], False
        pagination = {"start": start, "limit": 500, "more_items_in_collection": more}
        if more:
            pagination["next_start"] = start + len(rows)
        body = {"success": True, "data": rows, "additional_data": {"pagination": pagination}}
        return 200, {}, _json.dumps(body)

    responses.remove(responses.GET, f"{V1}/recents")  # the setup's empty listing
    responses.add_callback(responses.GET, f"{V1}/recents", callback=answer)
    since = reach_floor()
    changes = tap._read_recents((frozenset({"activity", "stage"}), since))
    if moves == 1:
        assert len(reads) == 2
        assert not changes.unchanged_since("stage", since)
        assert changes.newest["stage"]
    else:
        from tap_pipedrive.tap import RECENTS_READS

        assert len(reads) == RECENTS_READS
        assert not changes.complete
        assert not changes.unchanged_since("stage", since)


@responses.activate
def test_recents_names_one_item_type_never_several() -> None:
    """The spec types `/v1/recents`'s `items` as one enum value: a server reading it so
    matches none of a comma list, and an empty listing skips every stream as unchanged
    and flags no deletion. Asked for several types (every one, as the default streams
    want, or some: a stream deselected, a first run), the tap names none and keeps what
    it asked for; asked for one, it names it."""
    import json as _json
    import urllib.parse

    from tap_pipedrive.recents import LISTED_ITEMS, reach_floor

    tap = make_stream("stages")._tap  # type: ignore[attr-defined]
    asked: list[dict[str, list[str]]] = []
    at = "2026-12-01 08:00:00"
    listing = [
        {"item": "stage", "id": 7, "data": {"id": 7, "update_time": at}},
        {"item": "person", "id": 8, "data": {"id": 8, "update_time": at, "active_flag": False}},
    ]

    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.url or "").query)
        asked.append(query)
        named = query.get("items")
        rows = [row for row in listing if named is None or named == [row["item"]]]
        pagination = {"start": 0, "limit": 500, "more_items_in_collection": False}
        body = {
            "success": True,
            "data": rows or None,
            "additional_data": {"pagination": pagination},
        }
        return 200, {}, _json.dumps(body)

    responses.remove(responses.GET, f"{V1}/recents")  # the setup's empty listing
    responses.add_callback(responses.GET, f"{V1}/recents", callback=answer)
    since = reach_floor()
    for wanted in (LISTED_ITEMS, LISTED_ITEMS - {"filter"}, frozenset({"stage", "user"})):
        changes = tap._read_recents((wanted, since))
        assert "items" not in asked[-1]
        assert not changes.unchanged_since("stage", since)
        assert changes.unchanged_since("user", since)
        assert changes.deleted("person") == ([(8, at)] if "person" in wanted else [])
    changes = tap._read_recents((frozenset({"person"}), since))
    assert asked[-1]["items"] == ["person"] and changes.deleted("person") == [(8, at)]
    assert changes.unchanged_since("person", since) is False


@responses.activate
def test_a_gzipped_answer_is_read_whole() -> None:
    """Pipedrive compresses its answers; the body, read against its deadline a chunk at a
    time, is decoded as `requests` would."""
    import gzip
    import json as _json

    body = _json.dumps(v2_page(list(range(1, 400)), None)).encode()
    responses.get(f"{V2}/deals", body=gzip.compress(body), headers={"Content-Encoding": "gzip"})
    stream = make_stream("deals")
    assert [row["id"] for row in records(stream)] == list(range(1, 400))


@responses.activate
@pytest.mark.parametrize("synced_days_ago", [None, 40])
def test_a_sync_cut_short_reads_deletions_from_when_it_began(
    synced_days_ago: int | None,
) -> None:
    """A sync stopped midway leaves a bookmark past records edited after others were
    deleted. Its state notes when it began (`deletions_from`), and the run that resumes it
    asks `/v1/recents` for deletions from then, not from the bookmark, whether the last
    complete sync is too long ago for `/v1/recents` or there is none; completed, the
    sync's `synced_at` replaces it. (Before: a note deleted during an interrupted first
    run was never flagged.)"""
    stream = make_stream("notes")
    tap = stream._tap  # type: ignore[attr-defined]
    tap.run_started_at = dt.datetime.now(dt.timezone.utc)  # as `sync_all` sets it
    if synced_days_ago is not None:  # a complete sync, longer ago than /v1/recents reaches
        synced = tap.run_started_at - dt.timedelta(days=synced_days_ago)
        stream.stream_state["synced_at"] = synced.isoformat()
    responses.get(f"{V1}/notes", json=v1_page([1, 2], 0, True, ["2024-06-01 10:00:00"] * 2))
    responses.get(f"{V1}/notes", status=401)
    stream._write_starting_replication_value(None)
    with pytest.raises(PipedriveError):
        list(stream.get_records(None))
    begun = dt.datetime.fromisoformat(stream.stream_state["deletions_from"])
    assert tap.run_started_at - begun == dt.timedelta(minutes=10)
    # The bookmark past the deletion: records edited during the run came last.
    stream.stream_state["replication_key_value"] = tap.run_started_at.isoformat()
    _, since = stream.recents_since()  # type: ignore[misc]
    assert since == begun
    tap.halted = None  # the next run
    responses.replace(responses.GET, f"{V1}/notes", json=v1_page([3], 0, False))
    list(stream.get_records(None))
    assert "synced_at" in stream.stream_state
    assert "deletions_from" not in stream.stream_state


@responses.activate
def test_a_company_domain_that_does_not_exist_is_named_as_the_setting_to_check() -> None:
    """Only company_domain set: the line named api_url, a setting the user never gave."""
    import socket

    failure = requests.exceptions.ConnectionError("failed")
    failure.__cause__ = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    responses.get(re.compile(r"https://no-such-co\.pipedrive\.com/api/.*"), body=failure)
    config = {key: value for key, value in CONFIG.items() if key != "api_url"}
    line = "no such host no-such-co.pipedrive.com: check company_domain$"
    with pytest.raises(ConnectionFailed, match=line):
        TapPipedrive(config={**config, "company_domain": "no-such-co"}, validate_config=True)


@responses.activate
def test_pipedrive_unknown_to_the_dns_names_the_network_not_a_setting() -> None:
    """No api_url given: api.pipedrive.com exists, so a DNS that knows no such host is
    this machine's network, not a setting to check (the line said 'check api_url')."""
    import socket

    failure = requests.exceptions.ConnectionError("failed")
    failure.__cause__ = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    responses.get(re.compile(r"https://api\.pipedrive\.com/.*"), body=failure)
    config = {key: value for key, value in CONFIG.items() if key != "api_url"}
    line = "^the DNS here knows no host api.pipedrive.com: check this machine's network"
    with pytest.raises(ConnectionFailed, match=line):
        TapPipedrive(config=config, validate_config=True)


@responses.activate
def test_a_port_where_nothing_listens_is_named_as_the_setting_to_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Refused connections before anything answered stop the run once they have lasted
    `REFUSED_GIVE_UP_SECONDS`, with one line naming api_url: not after eight tries and two
    minutes of retries (Pipedrive never refuses a connection; a wrong port does)."""
    monkeypatch.setattr("tap_pipedrive.client.REFUSED_GIVE_UP_SECONDS", 0.2)
    tries = []

    def refuse(request: requests.PreparedRequest) -> t.NoReturn:
        tries.append(time.monotonic())
        threading.Event().wait(0.03)  # time.sleep is patched away here
        raise requests.exceptions.ConnectionError(ConnectionRefusedError(111, "refused"))

    responses.add_callback(responses.GET, re.compile(rf"{HOST}/.*"), callback=refuse)
    line = r"^pd\.example\.test refused every connection for 0 s \(nothing listens there\): "
    line += "check api_url$"
    with pytest.raises(ConnectionFailed, match=line):
        TapPipedrive(config=CONFIG, validate_config=True)  # reads the field definitions
    assert len(tries) > 1, "retried first: a service restarting may come back"
    assert tries[-1] - tries[0] >= 0.2


@responses.activate
def test_api_usage_counts_what_reached_pipedrive_and_what_it_charges() -> None:
    """A request refused a connection never reached a server: neither a request nor
    tokens in the `API usage` lines (a wrong port counted 5 requests, 100 tokens); one
    answered 401 carries a token that is no company's: a request, no tokens."""
    stream = make_stream("deals")
    meter = stream._tap.meter
    prepared = stream.prepare_request(context=None, next_page_token=None)
    refusal = requests.exceptions.ConnectionError(ConnectionRefusedError(111, "refused"))
    responses.get(f"{V2}/deals", body=refusal)
    with pytest.raises(requests.exceptions.ConnectionError):
        stream._request(prepared, None)
    responses.replace(responses.GET, f"{V2}/deals", status=401, json={"success": False})
    with pytest.raises(PipedriveError):
        stream._request(prepared, None)
    responses.replace(responses.GET, f"{V2}/deals", json={"success": True, "data": []})
    stream._request(prepared, None)
    usage = meter.usage["deals"]
    assert (usage.requests, usage.tokens) == (2, stream.token_cost)
    assert "deals: 0 records, 2 requests, 10 tokens" in list(meter.summary_lines())


@responses.activate
def test_any_answer_starts_the_count_of_refused_connections_again() -> None:
    """A refusal, then answers of any status (a 429, a 500: something listens), then a
    refusal: the time refused counts from that last refusal, not from the first."""
    stream = make_stream("deals")
    tap = stream._tap
    assert tap.refused_for() < 0.05
    threading.Event().wait(0.1)
    assert tap.refused_for() >= 0.1
    responses.get(f"{V2}/deals", status=503, json={"success": False, "error": "down"})
    prepared = stream.prepare_request(context=None, next_page_token=None)
    with pytest.raises(singer_sdk.exceptions.RetriableAPIError):
        stream._request(prepared, None)  # one try: a 503, an answer all the same
    assert tap.refused_for() < 0.05
