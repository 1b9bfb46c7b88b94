"""Requests in flight ahead of the reader: page chains, time windows, offset lookahead and
deal-product batches, against canned responses (`responses`) that answer from a small
account held here, as Pipedrive would: filters, sorting, cursors and offsets."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import threading
import time
import typing as t
from collections import Counter
from urllib.parse import parse_qs, parse_qsl, urlencode, urlparse

import pytest
import requests
import responses

from tap_pipedrive.client import PipedriveStream
from tap_pipedrive.pacing import Pacer
from tap_pipedrive.pipeline import (
    CURSOR_UP_TO,
    MOST_PARTS,
    PAGES_WAITING,
    SPARE_ON_WIRE,
    SPLIT_TARGET,
    PageChain,
    TimeWindows,
    Window,
    split_overflow,
    windows_to_start,
)
from tap_pipedrive.tap import TapPipedrive
from tap_pipedrive.timeutil import UTC, parse_datetime
from tests.helpers import mock_an_account_without_custom_fields

TOKEN = "unit-test-token-0123456789abcdef"
HOST = "https://pd.example.test"
V1 = f"{HOST}/v1"
V2 = f"{HOST}/api/v2"
CONFIG = {"api_key": TOKEN, "start_date": "2020-01-01T00:00:00Z", "api_url": HOST}
T0 = dt.datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def in_flight(monkeypatch: pytest.MonkeyPatch) -> t.Iterator[None]:
    """As against a distant server: four requests in flight, whatever the round trip here.
    Afterwards, the page threads a test stopped are let finish: a request one of them had
    already begun would otherwise reach the next test's mocked API."""
    monkeypatch.setattr(Pacer, "requests_to_keep_in_flight", lambda self, most: min(4, most))
    yield
    deadline = time.monotonic() + 1  # a held chain (never read on) waits on: let it
    for thread in threading.enumerate():
        if thread.name.endswith("-pages"):
            thread.join(timeout=max(deadline - time.monotonic(), 0))


# -- PageChain ----------------------------------------------------------------------------


class _Counter:
    """A paginator over pages 0..n-1 whose `fetch` records what was requested."""

    def __init__(self, pages: int) -> None:
        from singer_sdk.pagination import BaseAPIPaginator

        self.fetched: list[int] = []
        total = pages

        class Paginator(BaseAPIPaginator[int]):
            def get_next(self, response: t.Any) -> int | None:
                return response + 1 if response + 1 < total else None

        self.paginator = Paginator(0)

    def fetch(self, token: int) -> int:
        self.fetched.append(token)
        return token  # the "response" is the page number


def _wait_for(condition: t.Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_a_chain_yields_every_page_in_order_and_fetches_at_most_depth_ahead() -> None:
    counter = _Counter(10)
    chain = PageChain(counter.fetch, counter.paginator, depth=2)  # type: ignore[arg-type]
    pages = chain.pages()
    assert next(pages) == 0
    _wait_for(lambda: len(counter.fetched) == 3)  # the one being read, and two ahead
    time.sleep(0.05)
    assert len(counter.fetched) == 3  # and no further until the reader takes more
    assert next(pages) == 1
    _wait_for(lambda: len(counter.fetched) == 4)
    assert list(pages) == list(range(2, 10))


def test_a_held_chain_fetches_only_its_first_page_until_read_on() -> None:
    counter = _Counter(5)
    chain = PageChain(counter.fetch, counter.paginator, hold=True).start()  # type: ignore[arg-type]
    _wait_for(lambda: len(counter.fetched) == 1)
    time.sleep(0.05)
    assert counter.fetched == [0]
    assert list(chain.pages()) == [0, 1, 2, 3, 4]


def test_pages_fetched_before_the_reader_asks_wait_compacted_and_are_read_whole() -> None:
    """A stream's first pages, fetched ahead, wait as JSON text rather than as parsed
    dicts (three to four times the memory); they read back the same. Pages fetched once
    the reader is there are not touched: it may already hold and change them."""
    from singer_sdk.pagination import BaseAPIPaginator

    from tap_pipedrive.client import _PAYLOAD_ATTR, compact_payload, payload_of

    class Paginator(BaseAPIPaginator[int]):
        def get_next(self, response: requests.Response) -> int | None:
            page = payload_of(response)["data"][0]["id"]
            return page + 1 if page < 3 else None

    def fetch(page: int) -> requests.Response:
        response = requests.Response()
        response._content = json.dumps({"data": [{"id": page, "name": "é"}]}).encode()
        payload_of(response)  # parsed on arrival, as validate_response does
        return response

    chain = PageChain(fetch, Paginator(0), depth=2, compact=compact_payload).start()
    _wait_for(lambda: chain.pages_waiting() == 2)
    waiting = [value for _, value in list(chain._queue.queue)]
    assert all(not hasattr(r, _PAYLOAD_ATTR) and r.content for r in waiting)
    pages = list(chain.pages())
    assert [payload_of(r)["data"] for r in pages] == [[{"id": i, "name": "é"}] for i in range(4)]
    assert hasattr(pages[-1], _PAYLOAD_ATTR) and not pages[-1].content  # left as it came


def test_a_stopped_chain_fetches_no_further_page() -> None:
    counter = _Counter(100)
    chain = PageChain(counter.fetch, counter.paginator, hold=True).start()  # type: ignore[arg-type]
    _wait_for(lambda: len(counter.fetched) == 1)
    chain.stop()
    time.sleep(0.05)
    assert counter.fetched == [0]


def test_an_error_of_the_fetching_thread_is_raised_to_the_reader_after_the_pages_before_it() -> (
    None
):
    counter = _Counter(10)

    def fetch(token: int) -> int:
        if token == 3:
            raise RuntimeError("Pipedrive said no")
        return counter.fetch(token)

    pages = PageChain(fetch, counter.paginator).pages()  # type: ignore[arg-type]
    assert [next(pages) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(RuntimeError, match="said no"):
        next(pages)


def test_an_inline_chain_fetches_in_the_readers_thread_one_page_at_a_time() -> None:
    counter = _Counter(3)
    threads: list[str] = []

    def fetch(token: int) -> int:
        threads.append(threading.current_thread().name)
        return counter.fetch(token)

    pages = PageChain(fetch, counter.paginator, inline=True).pages()  # type: ignore[arg-type]
    assert next(pages) == 0
    assert counter.fetched == [0]
    assert list(pages) == [1, 2]
    assert set(threads) == {threading.current_thread().name}


# -- TimeWindows --------------------------------------------------------------------------


def _at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def test_windows_are_sized_from_the_first_page_and_end_open_ended() -> None:
    # 500 records over 1,000 s: 0.5 a second; 400 a window is 800 s.
    times = [_at(2 * i) for i in range(500)]
    windows = TimeWindows.after_page(times, list(range(500)), _at(3000), target=400)
    first = windows.next()
    assert first.since == _at(998)
    assert set(first.skip_ids) == {499}  # the record of that second already read
    assert first.until - first.since == dt.timedelta(seconds=799)  # 400 / (500 / 998 s)
    second = windows.next()
    assert second == Window(first.until, first.until + dt.timedelta(seconds=799))
    assert windows.next() == Window(second.until, None)  # past the run's start: open-ended
    assert windows.next() is None


def test_windows_follow_the_density_of_the_latest_window_to_answer() -> None:
    windows = TimeWindows(_at(0), _at(10**6), density=1.0, target=400)
    first = windows.next()
    assert first == Window(_at(0), _at(400))
    # It came back full, its 500th record at 100 s: 5 a second, so windows of 80 s.
    full = {
        "data": [{"update_time": _at(i / 5).isoformat()} for i in range(1, 501)],
        "additional_data": {"next_cursor": "more"},
    }
    windows.observe_page(first, full, "update_time")
    assert windows.next() == Window(_at(400), _at(480))


def test_an_empty_window_makes_the_next_one_open_ended() -> None:
    windows = TimeWindows(_at(0), _at(10**6), density=1.0, target=400)
    first = windows.next()
    windows.observe_page(first, {"data": None, "additional_data": {}}, "update_time")
    assert windows.next() == Window(_at(400), None)
    assert windows.next() is None


class _ChainState:
    """What `windows_to_start` reads of a window's chain."""

    def __init__(self, *, fetching: bool, waiting: int) -> None:
        self._fetching, self._waiting = fetching, waiting

    def fetching(self) -> bool:
        return self._fetching

    def pages_waiting(self) -> int:
        return self._waiting


def test_windows_start_while_the_wire_has_room_and_few_pages_are_held() -> None:
    """Requests on the wire and pages answered are counted, not windows: a window that has
    answered and fetches its second page still holds a place on the wire."""
    on_wire, done = _ChainState(fetching=True, waiting=0), _ChainState(fetching=False, waiting=1)
    assert windows_to_start([], wanted=6) == 6
    assert windows_to_start([on_wire] * 4, wanted=6) == 2
    answered_and_fetching = _ChainState(fetching=True, waiting=1)
    assert windows_to_start([answered_and_fetching] * 3, wanted=6) == 2  # 8 - 3 held - 3 sent
    assert windows_to_start([done] * (PAGES_WAITING - 2), wanted=6) == 2
    assert windows_to_start([done] * PAGES_WAITING, wanted=6) == 0  # the writer sets the pace
    assert windows_to_start([on_wire] * 9, wanted=6) == 0


# -- a small account behind `responses` ---------------------------------------------------


class Account:
    """Records with update times, answering v2 (cursor, `updated_since`/`updated_until`) and
    v1 (offset, `updated_since`) lists sorted by update time, as Pipedrive does."""

    def __init__(self, count: int, *, spread_seconds: int = 86_400, ties: int = 1) -> None:
        self.rows = [
            {"id": i, "update_time": _at((i // ties) * spread_seconds / count)}
            for i in range(1, count + 1)
        ]
        self.requests: list[dict[str, str]] = []
        self.lock = threading.Lock()
        self.before_select: t.Callable[[Account, dict[str, str]], None] | None = None

    def selected(self, params: dict[str, str]) -> list[dict[str, t.Any]]:
        since = params.get("updated_since")
        until = params.get("updated_until")
        rows = [
            row
            for row in self.rows
            if (since is None or row["update_time"] >= parse_datetime(since))
            and (until is None or row["update_time"] < parse_datetime(until))
        ]
        return sorted(rows, key=lambda row: (row["update_time"], row["id"]))

    def _params(self, request: requests.PreparedRequest) -> dict[str, str]:
        query = parse_qs(urlparse(request.url).query)
        params = {key: values[0] for key, values in query.items()}
        with self.lock:
            self.requests.append(params)
            if self.before_select:
                self.before_select(self, params)
        return params

    def _page(
        self, request: requests.PreparedRequest, offset_param: str, time_format: str
    ) -> tuple[int, int, bool, dict[str, t.Any]]:
        """The page a request asks for: start, limit, whether more follow, and the body's
        `success` and `data`, update times written as the API version writes them."""
        params = self._params(request)
        rows = self.selected(params)
        if params.get("sort_direction") == "desc":
            rows.reverse()
        start, limit = int(params.get(offset_param) or 0), int(params["limit"])
        page = rows[start : start + limit]
        data = [{**r, "update_time": r["update_time"].strftime(time_format)} for r in page]
        body = {"success": True, "data": data or None}
        return start, limit, start + limit < len(rows), body

    def v2(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        start, limit, more, body = self._page(request, "cursor", "%Y-%m-%dT%H:%M:%SZ")
        body["additional_data"] = {"next_cursor": str(start + limit) if more else None}
        return 200, {}, json.dumps(body)

    def v1(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        start, limit, more, body = self._page(request, "start", "%Y-%m-%d %H:%M:%S")
        pagination = {"start": start, "limit": limit, "more_items_in_collection": more}
        if more:
            pagination["next_start"] = start + limit
        body["additional_data"] = {"pagination": pagination}
        return 200, {}, json.dumps(body)


def _sync_records(stream_name: str, **config: t.Any) -> list[dict[str, t.Any]]:
    mock_an_account_without_custom_fields(HOST)
    tap = TapPipedrive(config={**CONFIG, **config}, validate_config=True)
    stream = t.cast(PipedriveStream, tap.streams[stream_name])
    stream._write_starting_replication_value(None)
    return list(stream.get_records(None))


def _ids(records: list[dict[str, t.Any]]) -> list[t.Any]:
    return [record["id"] for record in records if not record.get("_sdc_deleted_at")]


@responses.activate
def test_a_long_v2_list_is_read_as_windows_in_flight_and_written_in_order() -> None:
    account = Account(2_600, ties=3)  # three records a second: ties across every boundary
    responses.add_callback(responses.GET, f"{V2}/persons", callback=account.v2)
    records = _sync_records("persons")
    assert _ids(records) == [row["id"] for row in account.selected({})]  # all, once, sorted
    times = [record["update_time"] for record in records]
    assert times == sorted(times)
    windows = [p for p in account.requests if "updated_until" in p]
    assert len(windows) >= 4  # the list was split ...
    spans = sorted((p["updated_since"], p["updated_until"]) for p in windows if "cursor" not in p)
    for (_, until), (since, _) in itertools.pairwise(spans):
        assert until == since  # ... into windows that meet, without gap or overlap
    assert len(account.requests) <= 2600 / 400 + 4  # windows hold about 400 records each


@responses.activate
def test_a_list_without_updated_until_is_read_as_windows_ended_here(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Products filter by `updated_since` alone: each window's cursor stops at the first
    page that reaches the next window, whose records it leaves to that window. Every
    record is written once, in order, in as many requests as with `updated_until`."""
    account = Account(2_600, ties=3)
    responses.add_callback(responses.GET, f"{V2}/products", callback=account.v2)
    records = _sync_records("products")
    assert _ids(records) == [row["id"] for row in account.selected({})]  # all, once, sorted
    assert not any("updated_until" in p for p in account.requests)
    windows = {p["updated_since"] for p in account.requests if "cursor" not in p}
    assert len(windows) >= 4  # the list was split
    assert len(account.requests) <= 2600 / 400 + 4  # as with `updated_until` (above)
    assert "ignored" not in caplog.text  # nothing was ignored: the filter does not exist


@responses.activate
@pytest.mark.parametrize("ignored", ["updated_until", "updated_since"])
def test_windows_hold_only_their_own_records_even_from_a_server_that_ignores_a_bound(
    ignored: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A server that does not apply `updated_until` (or `updated_since`) to a window
    answers records of the windows after it (or before it): they are left to their own
    window, so every record is written once, in order, and the cause is logged."""
    account = Account(2_600, ties=3)

    def v2_without_the_bound(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        url = urlparse(request.url)
        query = parse_qsl(url.query)
        if any(key == "updated_until" for key, _ in query):  # a window's request
            query = [(key, value) for key, value in query if key != ignored]
        request.url = url._replace(query=urlencode(query)).geturl()
        return account.v2(request)

    responses.add_callback(responses.GET, f"{V2}/persons", callback=v2_without_the_bound)
    records = _sync_records("persons")
    assert _ids(records) == [row["id"] for row in account.selected({})]  # all, once, sorted
    assert sum(1 for p in account.requests if "cursor" not in p) >= 5  # windows were used
    assert f"ignored `{ignored}`" in caplog.text


@responses.activate
@pytest.mark.parametrize(
    ("sparse_before", "sparse_after"), [(600, 600), (6_000, 0)], ids=["amid-the-list", "at-its-end"]
)
def test_a_window_that_meets_a_burst_of_edits_is_split_not_paged_through(
    sparse_before: int, sparse_after: int
) -> None:
    """Windows are sized from the density seen so far; one that holds a bulk edit (4,000
    records in an hour, where 100 s lay between records before) is split after its first
    page into windows sized from that page, read side by side, instead of being read one
    page after another by its cursor. So is the last, open-ended window."""
    account = Account(0)
    times = [_at(i * 100) for i in range(sparse_before)]  # a record every 100 s
    burst_at = sparse_before * 100
    times += [_at(burst_at + i) for i in range(4_000)]  # the burst: one record a second
    times += [_at(burst_at + 4_000 + i * 100) for i in range(sparse_after)]  # sparse again
    account.rows = [{"id": i, "update_time": time} for i, time in enumerate(times, start=1)]
    responses.add_callback(responses.GET, f"{V2}/persons", callback=account.v2)
    records = _sync_records("persons")
    assert _ids(records) == [row["id"] for row in account.selected({})]  # all, once, sorted
    pages_by_cursor = Counter(
        (p.get("updated_since"), p.get("updated_until")) for p in account.requests if "cursor" in p
    )
    # No window's cursor read more than the three pages a split leaves it (the burst in
    # one window would take eight).
    assert max(pages_by_cursor.values(), default=0) <= CURSOR_UP_TO // 500
    assert len(account.requests) <= len(times) / 400 + 12


def test_a_window_is_split_by_the_density_of_its_first_page_not_of_a_bulk_edit() -> None:
    window = Window(_at(0), _at(10_000))
    # 900 s of one record every 2 s, then a bulk edit of 50 records in the page's last second.
    rows = [{"id": i, "update_time": _at(2 * i).isoformat()} for i in range(450)]
    rows += [{"id": 1000 + i, "update_time": _at(900).isoformat()} for i in range(50)]
    page = {"data": rows, "additional_data": {"next_cursor": "more"}}
    parts = split_overflow(window, page, "update_time")
    assert parts is not None
    # 9,100 s left at 0.5 a second (the bulk edit left out): a first window of about
    # SPLIT_TARGET records, without the records of 900 s already read, then windows of
    # twice the time of the one before, the last taking what is left.
    assert parts[0].since == _at(900)
    assert set(parts[0].skip_ids) == {1000 + i for i in range(50)}
    assert all(not part.skip_ids for part in parts[1:])
    spans = [(part.until - part.since).total_seconds() for part in parts]
    assert abs(spans[0] * 0.5 - SPLIT_TARGET) < 0.02 * SPLIT_TARGET
    assert spans[1] == pytest.approx(2 * spans[0], abs=1)
    assert parts[-1].until == window.until
    for before, after in itertools.pairwise(parts):
        assert before.until == after.since
    # However long the rest, at most MOST_PARTS windows.
    long_window = Window(_at(0), _at(10**9))
    assert len(split_overflow(long_window, page, "update_time") or []) == MOST_PARTS
    # A rest of about three pages is left to the cursor; a single second cannot be split;
    # a window without more pages has no rest.
    assert split_overflow(Window(_at(0), _at(3_000)), page, "update_time") is None
    one_second = [{"id": i, "update_time": _at(5).isoformat()} for i in range(500)]
    assert split_overflow(window, {**page, "data": one_second}, "update_time") is None
    assert split_overflow(window, {**page, "additional_data": {}}, "update_time") is None


def test_the_open_ended_last_window_is_split_up_to_the_lists_end_and_stays_open() -> None:
    rows = [{"id": i, "update_time": _at(2 * i).isoformat()} for i in range(500)]
    page = {"data": rows, "additional_data": {"next_cursor": "more"}}
    last_window = Window(_at(0), None)
    parts = split_overflow(last_window, page, "update_time", end=_at(10_000))
    assert parts is not None
    assert parts[0].since == _at(998)
    assert parts[-1].until is None  # what is updated while the run reads is still read
    assert [part.since for part in parts[1:]] == [part.until for part in parts[:-1]]
    assert split_overflow(last_window, page, "update_time") is None  # no end known
    assert split_overflow(last_window, page, "update_time", end=_at(998)) is None


@responses.activate
def test_windows_are_not_used_when_the_next_page_in_flight_is_enough(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Pacer, "requests_to_keep_in_flight", lambda self, most: 2)
    account = Account(1_200)
    responses.add_callback(responses.GET, f"{V2}/persons", callback=account.v2)
    assert _ids(_sync_records("persons")) == list(range(1, 1201))
    assert [p.get("cursor") for p in account.requests] == [None, "500", "1000"]
    assert not any("updated_until" in p for p in account.requests)


@responses.activate
def test_a_long_v1_list_is_read_by_offsets_in_flight_overlapping_by_one_record() -> None:
    account = Account(2_000)
    responses.add_callback(responses.GET, f"{V1}/notes", callback=account.v1)
    assert _ids(_sync_records("notes")) == list(range(1, 2001))
    starts = sorted(int(p["start"]) for p in account.requests)
    assert starts[:5] == [0, 499, 998, 1497, 1996]
    assert {p["updated_since"] for p in account.requests} == {"2020-01-01T00:00:00Z"}


@responses.activate
@pytest.mark.parametrize("stream_name", ["files", "notes"])
def test_a_v1_server_that_pages_smaller_than_asked_is_read_page_by_page_without_loss(
    stream_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Offsets requested ahead assume pages of the size asked for. A server that answers
    fewer (its own cap, with `more_items_in_collection` and `next_start` as usual) would
    leave the records between its pages and those offsets unread: the tap notices the
    short page and reads on from its `next_start`, one page after another."""
    account = Account(700, spread_seconds=7_000)
    cap = 30

    def capped(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        url = urlparse(request.url)
        query = [(k, str(cap) if k == "limit" else v) for k, v in parse_qsl(url.query)]
        if stream_name == "files":  # newest first
            query = [(k, v) for k, v in query if k != "sort"] + [("sort_direction", "desc")]
        request.url = url._replace(query=urlencode(query)).geturl()
        return account.v1(request)

    responses.add_callback(responses.GET, f"{V1}/{stream_name}", callback=capped)
    ids = _ids(_sync_records(stream_name))
    expected = list(range(1, 701))
    assert sorted(ids) == expected and len(ids) == len(expected)  # none lost, none twice
    assert ids == (expected[::-1] if stream_name == "files" else expected)
    assert "pages of 30 records" in caplog.text


@responses.activate
def test_a_v1_list_that_moves_mid_sync_is_reread_from_the_last_record_without_loss() -> None:
    """A note edited while we page moves to the end of the list; every later note shifts
    back one place. The overlap shows it, and the rest is read by update time again."""
    account = Account(2_000)
    moved: list[int] = []

    def edit_one_note(acct: Account, params: dict[str, str]) -> None:
        if params.get("start") == "499" and not moved:  # after the first page was served
            row = acct.rows[10]
            row["update_time"] = _at(10**6)
            moved.append(row["id"])

    account.before_select = edit_one_note
    responses.add_callback(responses.GET, f"{V1}/notes", callback=account.v1)
    ids = _ids(_sync_records("notes"))
    assert moved
    assert set(ids) == set(range(1, 2001))  # nothing lost
    assert ids[-1] == moved[0]  # the edited note comes again, last, with its new time


@responses.activate
def test_offset_lookahead_stops_at_the_end_of_the_list() -> None:
    account = Account(1_400, spread_seconds=10)  # all within 10 s, long ago: no guess helps
    responses.add_callback(responses.GET, f"{V1}/notes", callback=account.v1)
    assert _ids(_sync_records("notes")) == list(range(1, 1401))
    # Three pages, and past the end at most what the start lets out with one request
    # enough for the round trip: that one and its spares on the wire, as many waiting.
    assert len(account.requests) <= 3 + 2 * (1 + SPARE_ON_WIRE)


@responses.activate
def test_a_slow_writer_holds_few_pages_ahead_however_many_requests_may_be_in_flight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When the writer, not the API, sets the pace, the windows in flight would all come
    back and wait in memory: no further window is requested while `PAGES_WAITING` wait.
    What is held is bounded by the settings (those waiting, those on the wire), not by the
    length of the list."""
    from tap_pipedrive.pipeline import PAGES_WAITING, SPARE_ON_WIRE

    kept_in_flight = 8
    monkeypatch.setattr(
        Pacer, "requests_to_keep_in_flight", lambda self, most: min(kept_in_flight, most)
    )
    account = Account(18_000)
    responses.add_callback(responses.GET, f"{V2}/persons", callback=account.v2)
    mock_an_account_without_custom_fields(HOST)
    tap = TapPipedrive(config=CONFIG, validate_config=True)
    stream = t.cast(PipedriveStream, tap.streams["persons"])
    stream._write_starting_replication_value(None)
    parse = stream.parse_response
    ahead: list[int] = []

    def slow_parse(response: requests.Response) -> t.Iterable[dict[str, t.Any]]:
        time.sleep(0.05)  # the writer is the slow end
        ahead.append(len(account.requests) - len(ahead) - 1)  # sent, less read and the probe
        return parse(response)

    monkeypatch.setattr(stream, "parse_response", slow_parse)
    assert _ids(list(stream.get_records(None))) == list(range(1, 18_001))
    held_at_most = PAGES_WAITING + kept_in_flight + SPARE_ON_WIRE + 1  # +1: the one being read
    assert len(ahead) > 2 * held_at_most  # the list is far longer than what may be held
    assert max(ahead) <= held_at_most, str(ahead)
    # Once the answers are in, only those waiting are held, not those the wire could carry.
    assert sorted(ahead)[len(ahead) // 2] <= PAGES_WAITING + 1, str(ahead)


def test_a_list_begun_ahead_reads_as_it_would_have_and_keeps_its_error_for_its_turn() -> None:
    """`PrimedPages` takes the first page at once (starting the parts after it) and hands
    every page over in order when the stream's turn comes; an error met while starting is
    raised then, in the reader, not in whichever thread began the list."""
    from tap_pipedrive.client import PrimedPages

    started: list[int] = []

    def pages() -> t.Iterator[int]:
        started.append(0)
        yield 0
        yield from (1, 2)

    primed = PrimedPages(pages())  # type: ignore[arg-type]
    assert started == [0]  # begun at once
    assert list(primed) == [0, 1, 2]

    def failing() -> t.Iterator[int]:
        raise RuntimeError("401 on the first page")
        yield 0  # pragma: no cover

    primed = PrimedPages(failing())  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="401"):
        list(primed)
