"""End to end against a distant sandbox (latency on every answer, Pipedrive's burst limit):
the requests the tap keeps in flight lose nothing, draw no 429, keep records in order and
keep every STATE resumable."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import threading
import typing as t
from pathlib import Path

import pytest

from tap_pipedrive.client import PipedriveStream
from tap_pipedrive.sandbox import LISTED_WITH_DELETED as WITH_DELETED
from tap_pipedrive.sandbox import Sandbox
from tap_pipedrive.streams.projects import TasksStream
from tap_pipedrive.tap import HEADS_AHEAD, TapPipedrive
from tests.helpers import discover, run_tap, run_until_killed, select

START = "2019-01-01T00:00:00Z"
DEFAULT_STREAMS = (
    "deals", "deal_products", "persons", "organizations", "activities", "products", "notes",
    "leads", "files", "archived_deals", "archived_leads", "call_logs", "users", "stages",
    "pipelines", "deal_fields", "goals",
)  # fmt: skip


@pytest.fixture(scope="module")
def distant() -> t.Iterator[Sandbox]:
    """About 13,500 records, 250 ms away, 40 requests per 2 s at most."""
    with Sandbox(seed=21, scale=1.0) as running:
        running.set_faults(latency_ms=250, burst_limit=40)
        yield running


@pytest.fixture(scope="module")
def distant_run(distant: Sandbox, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("distant")
    config = {"api_key": distant.token, "api_url": distant.url, "start_date": START}
    catalog = select(discover(tmp, config), DEFAULT_STREAMS)
    distant.reset_requests()
    run = run_tap(tmp, config, catalog=catalog)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def test_every_stream_is_read_whole_and_once(distant_run, distant: Sandbox) -> None:
    for name in DEFAULT_STREAMS:
        expected = distant.truth(name, START, with_deleted=name in WITH_DELETED)
        assert distant_run.ids(name) == expected, name
        listed = [r["id"] for r in distant_run.records(name) if r.get("update_time") is not None]
        assert len(listed) == len(set(listed)), f"{name}: a record sent twice"


def test_requests_were_in_flight_side_by_side(distant: Sandbox, distant_run) -> None:
    """The long lists were split: v2 lists into update-time windows, notes into offsets."""
    windows = {p for _, path, q, _ in distant.requests if "updated_until" in q for p in [path]}
    assert {"/api/v2/deals", "/api/v2/activities", "/api/v2/persons"} <= windows
    starts = {q.get("start") for _, path, q, _ in distant.requests if path == "/v1/notes"}
    assert {"499", "998"} <= starts


def test_the_next_long_list_is_started_while_the_last_one_winds_down(
    distant: Sandbox, distant_run
) -> None:
    """Once a list has sent its last parts, the next long list's parts are sent too, not
    one round trip after the writer reaches it: each change of stream would idle the wire."""
    last_at: dict[str, int] = {}
    first_part_at: dict[str, int] = {}
    for at, (_, path, query, _) in enumerate(distant.requests):
        last_at[path] = at
        if "updated_until" in query or int(query.get("start") or 0) > 0:
            first_part_at.setdefault(path, at)  # a part after the list's first page
    in_order = sorted(first_part_at, key=first_part_at.__getitem__)
    overlapping = [
        (earlier, later)
        for earlier, later in itertools.pairwise(in_order)
        if first_part_at[later] < last_at[earlier]
    ]
    assert overlapping, in_order


def test_records_of_sorted_streams_leave_in_update_time_order(distant_run) -> None:
    for name in ("deals", "persons", "activities", "notes", "leads"):
        times = [r["update_time"] for r in distant_run.records(name) if r.get("update_time")]
        assert times == sorted(times), name


def test_no_429_of_the_taps_own_making(distant_run) -> None:
    assert "Retrying" not in distant_run.stderr
    assert "pausing" not in distant_run.stderr


def test_every_state_covers_only_deals_whose_products_were_written(distant_run) -> None:
    """Products are requested 100 deals at a time, several batches in flight: a STATE
    written meanwhile holds the deals bookmark back to the oldest deal still pending."""
    products_of: dict[int, set[int]] = {}  # the whole run's, checked complete above
    for record in distant_run.records("deal_products"):
        products_of.setdefault(record["deal_id"], set()).add(record["id"])
    deals: list[dict[str, t.Any]] = []
    written: set[int] = set()
    states = 0
    for message in distant_run.messages:
        if message["type"] == "RECORD" and message["stream"] == "deals":
            deals.append(message["record"])
        elif message["type"] == "RECORD" and message["stream"] == "deal_products":
            written.add(message["record"]["id"])
        elif message["type"] == "STATE":
            bookmark = message["value"]["bookmarks"].get("deals", {}).get("replication_key_value")
            if bookmark is None:
                continue
            states += 1
            covered = [d for d in deals if d.get("update_time") and d["update_time"] < bookmark]
            for deal in covered:
                assert products_of.get(deal["id"], set()) <= written, (deal["id"], bookmark)
    assert states > 3


def test_a_run_killed_midway_resumes_without_losing_a_deal_or_its_products(
    distant: Sandbox, tmp_path: Path
) -> None:
    config = {"api_key": distant.token, "api_url": distant.url, "start_date": START}
    catalog = select(discover(tmp_path, config), ["deals", "archived_deals", "deal_products"])

    def deals_bookmarked(message: dict[str, t.Any], before: list[dict[str, t.Any]]) -> bool:
        """The first STATE with a deals bookmark."""
        bookmarks = message["value"].get("bookmarks", {}) if message["type"] == "STATE" else {}
        return bool(bookmarks.get("deals", {}).get("replication_key_value"))

    first, _ = run_until_killed(tmp_path, config, catalog, deals_bookmarked)
    assert first.messages[-1]["type"] == "STATE"
    resumed = run_tap(tmp_path, config, state=first.final_state, catalog=catalog)
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    expected_deals = distant.truth("deals", START, with_deleted=True)
    assert first.ids("deals") < expected_deals, "the run was not interrupted midway"
    assert first.ids("deals") | resumed.ids("deals") == expected_deals
    expected_products = distant.truth("deal_products", START)
    assert first.ids("deal_products") | resumed.ids("deal_products") == expected_products


def test_a_list_read_in_sequence_is_fetched_before_its_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A list only its cursor can page through (a v2 list without an update-time filter,
    such as tasks) has its first pages fetched while the streams before it are read. Read
    when its turn came, a page per round trip, it kept the wire idle meanwhile: last in a
    run, it was its last second."""
    monkeypatch.setattr(TasksStream, "page_size", 100)
    with Sandbox(seed=21, scale=1.0) as sandbox:
        config = {"api_key": sandbox.token, "api_url": sandbox.url, "start_date": START}
        catalog = select(discover(tmp_path, config), ["deals", "tasks"])
        sandbox.set_faults(latency_ms=100)
        sandbox.reset_requests()
        tap = TapPipedrive(config=config, catalog=catalog)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            tap.sync_all()
        paths = [path for _, path, _, _ in sandbox.requests]
        tasks_pages = [at for at, path in enumerate(paths) if path == "/api/v2/tasks"]
        deals_pages = [at for at, path in enumerate(paths) if path == "/api/v2/deals"]
        tasks = sandbox.truth("tasks")
    assert len(tasks_pages) >= 2 and len(deals_pages) >= 4, paths
    assert min(tasks_pages[1:]) < max(deals_pages), paths  # begun while deals was read
    written = {m["record"]["id"] for m in map(json.loads, out.getvalue().splitlines())
               if m["type"] == "RECORD" and m["stream"] == "tasks"}  # fmt: skip
    assert written == tasks


@contextlib.contextmanager
def refusing(distant: Sandbox, refused: str) -> t.Iterator[list[str]]:
    """`distant` refusing `refused` (`path=status,...`) for the block: the paths requested
    meanwhile, in the list yielded, once the block ends; the faults are restored after."""
    distant.set_faults(latency_ms=250, burst_limit=40, refused_paths=refused)
    distant.reset_requests()
    paths: list[str] = []
    try:
        yield paths
    finally:
        paths += [path for _, path, _, _ in distant.requests]
        distant.set_faults(latency_ms=250, burst_limit=40, refused_paths="")


def test_each_long_list_is_begun_before_the_one_before_it_ends(
    distant: Sandbox, tmp_path: Path
) -> None:
    """Every change of long list is hidden, not only the first: the next list's first page
    is requested out of turn (short lists ahead of it do not hold it back), and a stream
    whose partitions all fail (goals answering 404) leaves no first pages behind that kept
    every later list from being begun early, nor are its other partitions requested."""
    config = {"api_key": distant.token, "api_url": distant.url, "start_date": START}
    lists = ["/v1/files", "/v1/notes", "/api/v2/organizations", "/api/v2/persons"]
    catalog = select(
        discover(tmp_path, config),
        ["files", "goals", "lead_labels", "note_fields", "notes", "organizations", "persons"],
    )
    with refusing(distant, "/v1/goals/find=404") as paths:
        run = run_tap(tmp_path, config, catalog=catalog)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.ids("persons") == distant.truth("persons", START, with_deleted=True)
    for earlier, later in itertools.pairwise(lists):
        last_of_earlier = max(at for at, path in enumerate(paths) if path == earlier)
        assert paths.index(later) < last_of_earlier, (earlier, later, paths)
    # Goals' first partition, requested ahead, answered 404: the other five were not.
    assert paths.count("/v1/goals/find") == 1, paths


def test_a_streams_partitions_are_requested_ahead_once_one_answered(
    distant: Sandbox, tmp_path: Path
) -> None:
    """Goals' four partitions (one request each) are requested while the list before it is
    read, as other first pages are, once the first answered with a page: not one after
    another when its turn comes."""
    config = {"api_key": distant.token, "api_url": distant.url, "start_date": START}
    catalog = select(discover(tmp_path, config), ["files", "goals"])
    distant.reset_requests()
    run = run_tap(tmp_path, config, catalog=catalog)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.ids("goals") == distant.truth("goals")
    paths = [path for _, path, _, _ in distant.requests]
    last_files = max(at for at, path in enumerate(paths) if path == "/v1/files")
    assert paths[:last_files].count("/v1/goals/find") >= HEADS_AHEAD, paths
    assert paths.count("/v1/goals/find") == 4, paths


def test_first_pages_are_started_by_the_writer_alone_and_none_is_left_behind(
    distant: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Starting a first page settles its stream's bookmark in the state the writer
    serialises: only the writer's thread may, not the thread reading `/v1/recents` beside
    it. And no first page is left of a stream whose turn is over, even one skipped before
    its first request (projects, whose custom fields are refused), where it counted as a
    head ahead for the rest of the run."""
    starters: set[str] = set()
    turns: list[str] = []
    left_behind: list[tuple[str, str]] = []
    head_chain, sync, take_head = (
        PipedriveStream.head_chain,
        PipedriveStream.sync,
        TapPipedrive.take_head,
    )

    def starting(self: PipedriveStream, context: t.Any) -> t.Any:
        starters.add(threading.current_thread().name)
        return head_chain(self, context)

    def syncing(self: PipedriveStream, context: t.Any = None) -> None:
        if self.parent_stream_type is None:
            turns.append(self.name)
        sync(self, context)

    def taking(self: TapPipedrive, stream: PipedriveStream, context: t.Any) -> t.Any:
        over = set(turns[:-1]) - set(turns[-1:])
        left_behind.extend((turns[-1], other.name) for other, _, _ in
                           getattr(self, "_heads", {}).values() if other.name in over)  # fmt: skip
        return take_head(self, stream, context)

    monkeypatch.setattr(PipedriveStream, "head_chain", starting)
    monkeypatch.setattr(PipedriveStream, "sync", syncing)
    monkeypatch.setattr(TapPipedrive, "take_head", taking)
    config = {"api_key": distant.token, "api_url": distant.url, "start_date": START}
    names = ["archived_projects", "files", "goals", "notes", "persons", "projects", "users"]
    catalog = select(discover(tmp_path, config), names)
    with refusing(distant, "/api/v2/projectFields=403,/v1/goals/find=404") as paths:
        tap = TapPipedrive(config=config, catalog=catalog)
        with contextlib.redirect_stdout(io.StringIO()):
            tap.sync_all()
    assert {"archived_projects", "files", "persons", "users"} <= set(turns)
    assert starters == {threading.current_thread().name}
    assert not left_behind
    # The field definitions, read on threads of their own, take the first page started
    # for them: none is requested twice, or left behind among the heads ahead.
    definitions = [path for path in paths if path.endswith("Fields")]
    assert sorted(definitions) == sorted(set(definitions)), definitions
    assert paths.count("/v1/goals/find") == 1, paths


def test_a_stream_refused_at_its_first_partition_costs_one_request_when_it_comes_first(
    distant: Sandbox, tmp_path: Path
) -> None:
    """Goals first in the run (its turn comes before its first page answered): its other
    partitions wait for that answer, the 404, and are never requested."""
    config = {"api_key": distant.token, "api_url": distant.url, "start_date": START}
    catalog = select(discover(tmp_path, config), ["goals", "persons"])
    with refusing(distant, "/v1/goals/find=404") as paths:
        run = run_tap(tmp_path, config, catalog=catalog)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.ids("persons") == distant.truth("persons", START, with_deleted=True)
    assert paths.count("/v1/goals/find") == 1, paths
