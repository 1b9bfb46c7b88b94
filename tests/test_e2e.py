"""End to end: the real CLI against the sandbox, compared with the sandbox's ground truth."""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import random
import re
import subprocess
import time
import typing as t
from pathlib import Path

import pytest

from tap_pipedrive.client import PipedriveStream
from tap_pipedrive.custom_fields import snake_case
from tap_pipedrive.sandbox import LISTED_WITH_DELETED as WITH_DELETED
from tap_pipedrive.sandbox import Sandbox
from tap_pipedrive.sandbox.data import ARCHIVED, DELETED
from tap_pipedrive.sandbox.server import parse_time
from tap_pipedrive.streams import replication_keys
from tap_pipedrive.tap import TapPipedrive, main
from tests.helpers import (
    TAP,
    discover,
    parse_messages,
    reported_unchanged,
    run_tap,
    run_until_killed,
    select,
    write_json,
)

START_DATE = "2023-03-01T00:00:00Z"
STREAMS = replication_keys()
DEAL_CHILDREN = ("deal_products", "deal_participants", "deal_flow")


def truth(sandbox: Sandbox, name: str, since: str = START_DATE) -> set[t.Any]:
    """What a correct sync of `name` from `since` yields, deleted records included where
    the stream lists them."""
    return sandbox.truth(name, since, with_deleted=name in WITH_DELETED)


INCREMENTAL = sorted(name for name, key in STREAMS.items() if key)
TOUCHED = {"deals": 4, "persons": 3, "organizations": 2, "activities": 3, "products": 2,
           "notes": 2, "leads": 2, "users": 1}  # fmt: skip


@pytest.fixture
def in_process_cli() -> t.Iterator[None]:
    """The SDK's CLI adds a root log handler on the stderr of the moment each time it is
    built; remove it afterwards, or the next in-process run logs to a closed capture. A
    run that ends in an error line turns logging off (`_exit_with`): turn it back on."""
    handlers = logging.getLogger().handlers[:]
    yield
    logging.getLogger().handlers[:] = handlers
    logging.disable(logging.NOTSET)


@pytest.fixture(scope="module")
def sandbox() -> t.Iterator[Sandbox]:
    with Sandbox(seed=11, scale=0.05) as running:
        yield running


@pytest.fixture(scope="module")
def config(sandbox: Sandbox) -> dict[str, str]:
    return {"api_key": sandbox.token, "api_url": sandbox.url, "start_date": START_DATE}


@pytest.fixture(scope="module")
def first_run(sandbox: Sandbox, config: dict[str, str], tmp_path_factory: pytest.TempPathFactory):
    sandbox.reset_requests()
    tmp = tmp_path_factory.mktemp("first")
    run = run_tap(tmp, config, catalog=select(discover(tmp, config), STREAMS))
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def test_every_stream_yields_exactly_the_ground_truth(first_run, sandbox: Sandbox) -> None:
    for name in STREAMS:
        expected = truth(sandbox, name)
        assert first_run.ids(name) == expected, f"{name}: ids differ from the sandbox's truth"
    assert sum(len(first_run.ids(name)) for name in STREAMS) > 200


def test_a_clean_run_logs_no_warning(first_run) -> None:
    """An operator alerting on WARNING must not be woken by a healthy run: the SDK warned
    "Stream is assumed to be unsorted" (naming no stream) for the lists read newest first
    by design; the stream says it at INFO, by name."""
    assert not [line for line in first_run.stderr.splitlines() if "| WARNING" in line]
    assert "Pipedrive cannot filter files by update time" in first_run.stderr


def test_archived_and_deleted_rows_are_not_left_out(first_run, sandbox: Sandbox) -> None:
    """Every row of the tables Pipedrive splits into a normal and an archived list, updated
    since the start date, arrives in one of the tap's streams (deleted ones where Pipedrive
    lists them), not only the rows of the normal list."""
    streams_of = {
        "deals": ("deals", "archived_deals"),
        "leads": ("leads", "archived_leads"),
        "projects": ("projects", "archived_projects"),
    }
    since = parse_time(START_DATE)
    for table_name, streams in streams_of.items():
        table = sandbox.engine.data.tables[table_name]
        with_deleted = bool(WITH_DELETED.intersection(streams))  # leads: none listed
        rows = {
            table.ids[i]
            for i in range(len(table))
            if table.upd[i] >= since and (with_deleted or not table.flags[i] & DELETED)
        }
        archived = {table.ids[i] for i in range(len(table)) if table.flags[i] & ARCHIVED}
        assert rows & archived, f"{table_name}: no archived row to check"
        missing = rows - set().union(*(first_run.ids(name) for name in streams))
        assert not missing, f"{table_name}: {len(missing)} rows in no stream"


def test_no_record_is_sent_twice_in_one_run(first_run) -> None:
    for name in STREAMS:
        records = first_run.records(name)
        assert len(records) == len(first_run.ids(name)), name


def test_timestamps_are_rfc3339_and_bookmarks_are_per_stream(first_run) -> None:
    for name in INCREMENTAL:
        key = STREAMS[name]
        values = [record[key] for record in first_run.records(name) if record.get(key)]
        if not values:
            continue
        for value in values:
            assert value[10] == "T" and value.endswith("+00:00"), (name, value)
        bookmark = first_run.final_state["bookmarks"][name]["replication_key_value"]
        assert bookmark == max(values), name


def test_custom_fields_arrive_as_top_level_columns_in_v1_and_v2(first_run) -> None:
    for name in STREAMS:  # no stream passes v2's `custom_fields` object through
        assert all("custom_fields" not in record for record in first_run.records(name)), name
    with_custom_fields = ("deals", "persons", "organizations", "products", "activities", "leads",
                          "projects", "archived_projects")  # fmt: skip
    for name in with_custom_fields:
        records = first_run.records(name)
        assert records, name
        hex_keys = {
            key for record in records for key in record if re.fullmatch("[0-9a-f]{40}", key)
        }
        assert hex_keys, f"{name}: custom fields were dropped"


def test_token_only_in_the_header_and_nowhere_in_the_output(first_run, sandbox: Sandbox) -> None:
    assert sandbox.requests, "the sandbox saw no requests"
    for method, path, query, headers in sandbox.requests:
        assert method == "GET"
        assert "api_token" not in query and sandbox.token not in json.dumps(query), path
        assert {k.lower(): v for k, v in headers.items()}.get("x-api-token") == sandbox.token
    assert sandbox.token not in first_run.stdout
    assert sandbox.token not in first_run.stderr


def test_second_run_from_state_yields_only_what_changed(
    first_run, sandbox: Sandbox, config: dict[str, str], tmp_path: Path
) -> None:
    # Only changes to records the endpoint lists count (a touched deal may be archived).
    changed = {
        name: set(sandbox.touch(name, n=count)) & truth(sandbox, name)
        for name, count in TOUCHED.items()
    }
    catalog = select(discover(tmp_path, config), STREAMS)
    second = run_tap(tmp_path, config, state=first_run.final_state, catalog=catalog)
    assert second.returncode == 0, second.stderr[-3000:]
    for name in INCREMENTAL:
        key = STREAMS[name]
        bookmark = first_run.final_state["bookmarks"][name].get("replication_key_value")
        boundary = {r["id"] for r in first_run.records(name) if r.get(key) == bookmark}
        got = second.ids(name)
        assert changed.get(name, set()) <= got, f"{name}: a changed record was missed"
        assert got <= changed.get(name, set()) | boundary, f"{name}: old records were re-sent"
    skipped = reported_unchanged(TOUCHED)
    assert {"activity_types", "filters", "pipelines", "stages"} <= skipped
    for name in set(STREAMS) - set(INCREMENTAL) - set(DEAL_CHILDREN) - {"mail_messages"}:
        # Full-table streams are read whole, unless Pipedrive reports them unchanged.
        expected = set() if name in skipped else truth(sandbox, name)
        assert second.ids(name) == expected, name
    # Children follow their parent: only the changed deals' products, participants, flow.
    changed_deals = second.ids("deals") | second.ids("archived_deals")
    assert {r["deal_id"] for r in second.records("deal_products")} <= changed_deals
    assert {r["deal_id"] for r in second.records("deal_flow")} <= changed_deals


def test_an_unchanged_account_costs_a_handful_of_requests(tmp_path: Path) -> None:
    """After a full run, an incremental run over an account where nothing changed reads
    `/v1/recents` once and skips every stream Pipedrive reports there unchanged; a table
    that changed is read again in full."""
    with Sandbox(seed=23, scale=0.2) as live:
        config = {"api_key": live.token, "api_url": live.url, "start_date": START_DATE}
        first = run_tap(tmp_path, config)
        assert first.returncode == 0, first.stderr[-2000:]
        live.reset_requests()
        again = run_tap(tmp_path, config, state=first.final_state)
        assert again.returncode == 0, again.stderr[-2000:]
        paths = [path for _, path, _, _ in live.requests]
        assert paths.count("/v1/recents") == 1
        recents = next(params for _, path, params, _ in live.requests if path == "/v1/recents")
        assert "items" not in recents  # several types asked: named none
        skipped_paths = (
            "/api/v2/deals", "/api/v2/persons", "/api/v2/activities", "/v1/notes", "/v1/files",
            "/v1/activityTypes", "/v1/filters", "/api/v2/stages",
        )  # fmt: skip
        for path in skipped_paths:
            assert path not in paths, f"{path} read although Pipedrive reports it unchanged"
        assert len(paths) <= 30, sorted(paths)
        assert again.ids("deals") == set() and again.ids("stages") == set()

        stage = sorted(live.truth("stages", START_DATE))[0]
        live.touch("stages", ids=[stage])
        third = run_tap(tmp_path, config, state=again.final_state)
        assert third.returncode == 0, third.stderr[-2000:]
        assert third.ids("stages") == live.truth("stages", START_DATE)  # read whole again
        assert third.ids("pipelines") == set()


def test_bad_token_ends_in_one_clear_line(config: dict[str, str], tmp_path: Path) -> None:
    run = run_tap(tmp_path, {**config, "api_key": "wrong-token-4b1d"})
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("tap-pipedrive: error")]
    assert len(errors) == 1 and "rejected the API token" in errors[0]
    assert "wrong-token-4b1d" not in run.stderr + run.stdout


@pytest.mark.parametrize("with_catalog", [True, False], ids=["one-stream", "discovering"])
def test_unreachable_host_ends_in_one_clear_line(
    with_catalog: bool,
    config: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    in_process_cli: None,
) -> None:
    """In-process, so the retries before giving up can be made short. Without a catalog
    the tap first reads the custom field definitions side by side: the first to fail for
    good stops the others, and its cause, not that stop, is what the user reads."""
    monkeypatch.setattr(PipedriveStream, "backoff_base_seconds", 0.01)
    catalog = write_json(tmp_path / "catalog.json", select(discover(tmp_path, config), ["users"]))
    bad = write_json(tmp_path / "bad.json", {**config, "api_url": "http://127.0.0.1:9"})
    argv = ["tap-pipedrive", "--config", str(bad)]
    monkeypatch.setattr("sys.argv", argv + (["--catalog", str(catalog)] if with_catalog else []))
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code != 0
    stderr = capfd.readouterr().err
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("tap-pipedrive: error")]
    assert errors == ["tap-pipedrive: error: cannot reach 127.0.0.1:9 (after retries)"]
    assert stderr.splitlines()[-1] == errors[0]  # the last word, whatever else was in flight
    assert config["api_key"] not in stderr


def test_a_host_that_does_not_exist_ends_at_once_in_one_line(
    config: dict[str, str], tmp_path: Path, capfd: pytest.CaptureFixture[str], in_process_cli: None
) -> None:
    """A typo in api_url: no two minutes of retries before the one line."""
    import socket

    try:
        socket.getaddrinfo("api.no-such-host.invalid", 443)
    except socket.gaierror as exc:
        if exc.errno != socket.EAI_NONAME:
            pytest.skip(f"this machine's resolver answers {exc}, not 'no such name'")
    bad = write_json(
        tmp_path / "bad.json", {**config, "api_url": "https://api.no-such-host.invalid"}
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.argv", ["tap-pipedrive", "--config", str(bad)])
        with pytest.raises(SystemExit) as exited:
            main()
    assert exited.value.code == 1
    stderr = capfd.readouterr().err
    assert "Traceback" not in stderr and "Retrying" not in stderr
    assert stderr.splitlines()[-1] == (
        "tap-pipedrive: error: no such host api.no-such-host.invalid: check api_url"
    )


def test_a_run_killed_midway_resumes_from_its_last_state_without_loss(tmp_path: Path) -> None:
    """SIGKILL after the first STATE of a sorted stream; rerun from that STATE."""
    with Sandbox(seed=5, scale=1.0) as big:
        config = {"api_key": big.token, "api_url": big.url, "start_date": "2019-01-01"}
        catalog = select(discover(tmp_path, config), ["deals"])
        killed, stopped = run_until_killed(
            tmp_path,
            config,
            catalog,
            lambda message, before: (
                message["type"] == "STATE" and any(m["type"] == "RECORD" for m in before)
            ),
        )
        assert stopped, "no STATE before the end of the stream"
        seen, state = killed.ids("deals"), killed.final_state
        expected = truth(big, "deals", "2019-01-01T00:00:00Z")
        assert seen < expected, "the run was not interrupted midway"
        resumed = run_tap(tmp_path, config, state=state, catalog=catalog)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        assert seen | resumed.ids("deals") == expected
        assert len(resumed.ids("deals")) < len(expected), "the rerun started over"


def test_messages_are_valid_singer(first_run) -> None:
    schemas = {m["stream"] for m in first_run.messages if m["type"] == "SCHEMA"}
    assert set(STREAMS) <= schemas
    assert parse_messages(first_run.stdout)[0]["type"] == "SCHEMA"


@pytest.mark.parametrize("stream_name", ["notes", "leads"])
def test_records_updated_mid_sync_do_not_push_others_out_of_a_v1_list(
    stream_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records read early and updated while the tap pages on move to the end of the sorted
    list; with deep offsets as many unread records would slide past the tap, unseen."""
    with Sandbox(seed=13, scale=0.2) as live:
        tap = TapPipedrive(
            config={"api_key": live.token, "api_url": live.url, "start_date": START_DATE}
        )
        stream = tap.streams[stream_name]
        monkeypatch.setattr(stream, "page_size", 20)
        stream._write_starting_replication_value(None)
        expected = live.truth(stream_name, START_DATE)
        assert len(expected) > 45  # several pages of 20 after the edit
        seen: list[t.Any] = []
        for record in stream.get_records(None):
            seen.append(record["id"])
            if len(seen) == 25:  # on the second page: colleagues edit five records already read
                live.touch(stream_name, ids=seen[:5])
        assert set(seen) == expected


def test_token_cap_stops_cleanly_and_the_next_run_resumes_without_loss(
    sandbox: Sandbox, config: dict[str, str], tmp_path: Path
) -> None:
    catalog = select(discover(tmp_path, config), STREAMS)
    capped = run_tap(tmp_path, {**config, "max_tokens_per_run": 200}, catalog=catalog)
    assert capped.returncode == 0, capped.stderr[-2000:]
    assert "Traceback" not in capped.stderr
    assert "| ERROR" not in capped.stderr  # a planned stop: no "unhandled error" per stream
    [line] = [x for x in capped.stderr.splitlines() if "max_tokens_per_run=200" in x]
    assert line.startswith("tap-pipedrive: Stopped before crossing")
    usage = [x for x in capped.stderr.splitlines() if "API usage: run total" in x]
    assert usage and "tokens (cap 200)" in usage[0]
    spent = int(re.search(r"(\d+) API tokens", usage[0]).group(1))
    assert 0 < spent <= 200
    sent = sum(1 for m in capped.messages if m["type"] == "RECORD")
    assert f"{sent} records sent" in line and f"total: {sent} records" in usage[0]
    resumed = run_tap(tmp_path, config, state=capped.final_state, catalog=catalog)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    for name in STREAMS:
        assert capped.ids(name) | resumed.ids(name) == truth(sandbox, name), name


@pytest.mark.parametrize(
    ("in_flight", "latency_ms", "caps"), [(1, 0, (40, 100)), (8, 100, (150, 190))]
)
def test_a_token_cap_met_while_deal_products_are_read_loses_none_of_them(
    tmp_path: Path, in_flight: int, latency_ms: int, caps: tuple[int, ...]
) -> None:
    """The cap can stop a run while a batch of deal products is requested or read, or
    after the deals list ended and only their products remain: the STATE it ends with
    holds the deals bookmark back before that batch and does not mark deals synced, so
    the resumed run reads them and their products again. (Lost 58 to 240 products of
    2,864 before: the batch was dropped, or deals skipped as unchanged.)"""
    streams = ["deals", "archived_deals", "deal_products"]
    stopped_in_products = 0
    with Sandbox(seed=1, scale=1.0) as live:
        live.set_faults(latency_ms=latency_ms)
        config = {"api_key": live.token, "api_url": live.url, "start_date": "2000-01-01",
                  "max_concurrent_requests": in_flight}  # fmt: skip
        catalog = select(discover(tmp_path, config), streams)
        expected = live.truth("deal_products", "2000-01-01T00:00:00Z")
        for cap in caps:
            capped = run_tap(tmp_path, {**config, "max_tokens_per_run": cap}, catalog=catalog)
            assert capped.returncode == 0, capped.stderr[-2000:]
            stopped_in_products += "stopped in stream 'deal_products'" in capped.stderr
            resumed = run_tap(tmp_path, config, state=capped.final_state, catalog=catalog)
            assert resumed.returncode == 0, resumed.stderr[-2000:]
            got = capped.ids("deal_products") | resumed.ids("deal_products")
            assert got == expected, (cap, len(expected - got), "products lost")
    assert stopped_in_products


def test_discovery_writes_the_catalog_whatever_the_token_cap(
    config: dict[str, str], tmp_path: Path
) -> None:
    """The cap is a sync's: discovery (the field definitions, 140 tokens) below it
    wrote no catalog and exited 0 before, and Meltano then failed on an invalid catalog."""
    catalog = discover(tmp_path, {**config, "max_tokens_per_run": 50})
    names = {entry["tap_stream_id"] for entry in catalog["streams"]}
    assert names == set(STREAMS)


def test_deletions_are_flagged_for_every_entity_that_reports_them(tmp_path: Path) -> None:
    """Deleted deals come from `status=deleted`; deleted persons, organizations, products,
    activities, notes and files, which their lists leave out, from `/v1/recents`."""
    with Sandbox(seed=17, scale=0.05) as live:
        config = {"api_key": live.token, "api_url": live.url, "start_date": START_DATE}
        first = run_tap(tmp_path, config)
        assert first.returncode == 0, first.stderr[-2000:]
        victims = {
            name: sorted(first.ids(name))[:2]
            for name in ("deals", "persons", "organizations", "products", "activities",
                         "notes", "files")
        }  # fmt: skip
        for name, ids in victims.items():
            assert ids, name
            live.delete(name, ids)
        second = run_tap(tmp_path, config, state=first.final_state)
        assert second.returncode == 0, second.stderr[-2000:]
        for name, ids in victims.items():
            flagged = {r["id"] for r in second.records(name) if r.get("_sdc_deleted_at")}
            assert set(ids) <= flagged, name
        for record in second.records("persons"):
            if record.get("_sdc_deleted_at"):
                assert record["_sdc_deleted_at"].endswith("+00:00")
        assert not any(r.get("_sdc_deleted_at") for r in first.records("persons"))


def test_deletions_are_read_from_where_the_stream_started_not_where_it_got_to(
    tmp_path: Path,
) -> None:
    """A monthly run of persons alone: one person deleted, then another edited. The edit
    moves the bookmark past the deletion as the stream reads, yet `/v1/recents` is read
    from the bookmark the run started from (at most a month back), so the deletion is
    flagged."""
    with Sandbox(seed=19, scale=0.02) as live:
        config = {"api_key": live.token, "api_url": live.url, "start_date": START_DATE}
        catalog = select(discover(tmp_path, config), ["persons"])
        first = run_tap(tmp_path, config, catalog=catalog)
        assert first.returncode == 0, first.stderr[-2000:]
        [victim] = sorted(first.ids("persons"))[:1]
        live.delete("persons", [victim])
        time.sleep(1.1)  # the edit a second after the deletion
        [edited] = live.touch("persons", n=1)
        state = copy.deepcopy(first.final_state)
        bookmark = state["bookmarks"]["persons"]
        last_sync = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=40)
        bookmark["synced_at"] = last_sync.isoformat()  # too long ago to skip the stream
        second = run_tap(tmp_path, config, state=state, catalog=catalog)
        assert second.returncode == 0, second.stderr[-2000:]
        assert edited in second.ids("persons")
        flagged = {r["id"] for r in second.records("persons") if r.get("_sdc_deleted_at")}
        assert victim in flagged


EXPECTED_TYPES = {
    "varchar": str, "varchar_auto": str, "text": str, "phone": str, "address": str,
    "time": str, "timerange": str, "date": str, "daterange": str,
    "double": (int, float), "monetary": (int, float),
    "enum": int, "set": list, "user": int, "org": int, "people": int,
}  # fmt: skip


@pytest.mark.parametrize("naming", ["key", "name"])
def test_custom_fields_of_every_type_arrive_typed_in_v1_and_v2(
    naming: str, sandbox: Sandbox, config: dict[str, str], tmp_path: Path
) -> None:
    config = {**config, "custom_field_names": naming}
    catalog = select(discover(tmp_path, config), ["deals", "leads", "persons"])
    run = run_tap(tmp_path, config, catalog=catalog)
    assert run.returncode == 0, run.stderr[-2000:]
    schemas = {m["stream"]: m["schema"] for m in run.messages if m["type"] == "SCHEMA"}
    definitions = [f for f in sandbox_fields(sandbox, "deal") if f.get("edit_flag")]
    assert {f["field_type"] for f in definitions} >= set(EXPECTED_TYPES)
    for stream in ("deals", "leads"):  # v2 and v1 serve the same deal fields
        properties = schemas[stream]["properties"]
        records = run.records(stream)
        for field in definitions:
            column = field["key"] if naming == "key" else field["column"]
            assert column in properties, (stream, field["name"])
            values = [r[column] for r in records if r.get(column) is not None]
            assert values, (stream, field["name"], "never set")
            assert all(isinstance(v, EXPECTED_TYPES[field["field_type"]]) for v in values), (
                stream, field["field_type"], values[:3],
            )  # fmt: skip
            if field["field_type"] == "enum":
                labels = {o["label"] for o in field["options"]}
                assert {r[f"{column}_label"] for r in records if r.get(column)} <= labels
            if field["field_type"] == "set":
                assert all(isinstance(x, int) for v in values for x in v)
                assert all(r[f"{column}_labels"] for r in records if r.get(column))
            if field["field_type"] == "monetary":
                assert any(r.get(f"{column}_currency") for r in records)
        assert not any("custom_fields" in r for r in records)


def test_project_custom_fields_arrive_named_and_typed(
    sandbox: Sandbox, config: dict[str, str], tmp_path: Path
) -> None:
    """Projects' custom fields are defined by `/api/v2/projectFields` (v1 has none), in v2's
    terms: they get named, typed columns like every other entity's."""
    import requests

    config = {**config, "custom_field_names": "name"}
    streams = ["projects", "archived_projects", "project_fields"]
    run = run_tap(tmp_path, config, catalog=select(discover(tmp_path, config), streams))
    assert run.returncode == 0, run.stderr[-2000:]
    definitions = requests.get(
        f"{sandbox.url}/api/v2/projectFields",
        headers={"x-api-token": sandbox.token},
        params={"limit": 500},
        timeout=30,
    ).json()["data"]
    assert {row["field_code"] for row in run.records("project_fields")} == {
        row["field_code"] for row in definitions
    }
    custom = [row for row in definitions if row["is_custom_field"]]
    assert {row["field_type"] for row in custom} >= {"varchar", "enum", "set", "monetary", "user"}
    schemas = {m["stream"]: m["schema"] for m in run.messages if m["type"] == "SCHEMA"}
    properties = schemas["projects"]["properties"]
    records = run.records("projects") + run.records("archived_projects")
    for field in custom:
        column = snake_case(field["field_name"])
        assert column in properties, field["field_name"]
        values = [r[column] for r in records if r.get(column) is not None]
        assert values, (field["field_name"], "never set")
        assert all(isinstance(v, EXPECTED_TYPES[field["field_type"]]) for v in values), (
            field["field_type"], values[:3],
        )  # fmt: skip
    assert not any(
        re.fullmatch("[0-9a-f]{40}", key) or key == "custom_fields" for r in records for key in r
    )


def test_project_boards_and_phases_name_what_projects_refer_to(
    sandbox: Sandbox, config: dict[str, str], tmp_path: Path
) -> None:
    """Off by default; selected, boards are one request, phases one per board (the
    `board_id` Pipedrive requires), and every project's board and phase is among them."""
    catalog = discover(tmp_path, config)
    defaults = {
        entry["tap_stream_id"]
        for entry in catalog["streams"]
        for meta in entry["metadata"]
        if not meta["breadcrumb"] and meta["metadata"].get("selected-by-default")
    }
    streams = ["project_boards", "project_phases", "project_templates", "projects"]
    assert not defaults & set(streams[:3])
    sandbox.reset_requests()
    run = run_tap(tmp_path, config, catalog=select(catalog, streams))
    assert run.returncode == 0, run.stderr[-2000:]
    paths = [path for _, path, _, _ in sandbox.requests]
    boards = {row["id"]: row for row in run.records("project_boards")}
    phases = {row["id"]: row for row in run.records("project_phases")}
    assert paths.count("/api/v2/boards") == 1
    assert paths.count("/api/v2/phases") == len(boards) >= 2
    assert run.ids("project_templates") == sandbox.truth("project_templates")
    assert run.records("projects")
    for project in run.records("projects"):
        assert phases[project["phase_id"]]["board_id"] == project["board_id"] in boards


def sandbox_fields(sandbox: Sandbox, entity: str) -> list[dict[str, t.Any]]:
    """The entity's field definitions as the sandbox serves them, with the column the
    `name` mode should give each custom one."""
    import requests

    from tap_pipedrive.custom_fields import build_custom_fields
    from tap_pipedrive.streams import STREAM_TYPES

    response = requests.get(
        f"{sandbox.url}/v1/{entity}Fields",
        headers={"x-api-token": sandbox.token},
        params={"limit": 500},
        timeout=30,
    )
    rows = response.json()["data"]
    reserved = set()
    for stream in STREAM_TYPES:
        if stream.custom_field_entity == entity:
            reserved |= set(json.loads(
                (Path(__file__).parents[1] / "tap_pipedrive" / "schemas" / f"{stream.name}.json")
                .read_text()
            )["properties"])  # fmt: skip
    columns = {
        f.key: f.column for f in build_custom_fields(rows, name_mode="name", reserved=reserved)
    }
    return [{**row, "column": columns.get(row["key"])} for row in rows]


def test_deal_products_cost_one_request_per_100_changed_deals(tmp_path: Path) -> None:
    with Sandbox(seed=19, scale=0.3) as live:
        config = {"api_key": live.token, "api_url": live.url, "start_date": "2019-01-01"}
        catalog = select(discover(tmp_path, config), ["deals", "archived_deals", "deal_products"])
        live.reset_requests()
        run = run_tap(tmp_path, config, catalog=catalog)
        assert run.returncode == 0, run.stderr[-2000:]
        live_deals = [r for r in run.records("deals") if not r.get("_sdc_deleted_at")]
        archived = [r for r in run.records("archived_deals") if not r.get("_sdc_deleted_at")]
        calls = live.request_count("/api/v2/deals/products")
        assert len(live_deals) > 300 and archived
        assert calls <= -(-len(live_deals) // 100) + -(-len(archived) // 100), calls
        expected = live.truth("deal_products", "2019-01-01T00:00:00Z")
        assert run.ids("deal_products") == expected
        # A batch is named in the logs by its number, not by its hundred deal ids.
        batch_lines = [line for line in run.stderr.splitlines() if '"deal_batch"' in line]
        assert batch_lines and not any('"deal_ids"' in line for line in run.stderr.splitlines())


@pytest.mark.parametrize(
    ("in_flight", "latency_ms", "group", "group_starts", "touch_at"),
    [(1, 0, 600, 300, None), (8, 250, 1500, None, 700)],
    ids=["one page after another", "pages read ahead by offsets"],
)
def test_a_record_of_a_second_many_share_edited_between_pages_costs_no_other(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    in_flight: int,
    latency_ms: int,
    group: int,
    group_starts: int | None,
    touch_at: int | None,
) -> None:
    """Hundreds of notes share one update second across a page boundary (an import); one
    of them, already read, is edited before the next page is requested, so the rest of
    that second shifts back by one. No note of it is lost (before: the one that slid over
    the offset, for good: the bookmark passed it) and none is sent twice (before: 298,
    re-read from the group's start after offsets read ahead)."""
    from tap_pipedrive.sandbox.server import Engine

    with Sandbox(seed=1, scale=2.0) as live:
        notes = live.data.tables["notes"]
        rows = [i for i in range(len(notes)) if not notes.flags[i] & (DELETED | ARCHIVED)]
        times = sorted(notes.upd[i] for i in rows)
        when = times[group_starts if group_starts is not None else len(times) // 2]
        for i in random.Random(7).sample(rows, group):  # spread over the table, then one
            notes.upd[i], notes.add[i] = when, min(notes.add[i], when)
        notes.version += 1
        live.engine.version += 1
        order = sorted(rows, key=lambda i: (notes.upd[i], notes.ids[i]))
        first = next(k for k, i in enumerate(order) if notes.upd[i] == when)
        # Sequential pages: a note of the group read on the page before. Read ahead: an
        # early note, so that the list moves under the offsets and is read on in sequence.
        edited = notes.ids[order[first + 5 if touch_at is None else 5]]
        second = dt.datetime.fromtimestamp(when, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        fired: list[dict[str, str]] = []
        list_v1 = Engine.list_v1

        def edit_then_answer(engine: Engine, endpoint: str, params: dict[str, str]) -> t.Any:
            start = int(params.get("start") or 0)
            due = (
                params.get("updated_since") == second and start > 0
                if touch_at is None
                else start >= first + touch_at
            )
            if endpoint == "notes" and due and not fired:
                fired.append(dict(params))
                live.touch("notes", ids=[edited])
            return list_v1(engine, endpoint, params)

        monkeypatch.setattr(Engine, "list_v1", edit_then_answer)
        live.set_faults(latency_ms=latency_ms)
        config = {"api_key": live.token, "api_url": live.url, "start_date": "2000-01-01",
                  "max_concurrent_requests": in_flight}  # fmt: skip
        run = run_tap(tmp_path, config, catalog=select(discover(tmp_path, config), ["notes"]))
        assert run.returncode == 0, run.stderr[-2000:]
        assert fired, "the edit was not made between pages"
        records = run.records("notes")
        assert {r["id"] for r in records} == live.truth("notes", "2000-01-01T00:00:00Z")
        sent = [(r["id"], r["update_time"]) for r in records]
        assert len(sent) == len(set(sent)), "a note was sent twice"
        assert [r["update_time"] for r in records] == sorted(r["update_time"] for r in records)


@pytest.mark.parametrize("edited", ["mid-page", "last on a page the window goes on after"])
def test_a_record_sent_with_a_newer_update_time_than_its_window_is_left_to_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edited: str
) -> None:
    """A record edited while Pipedrive put a page of a time window together comes with an
    update time past the window. Mid-page, written there, it would be out of order and the
    SDK would stop the run (exit 1, no STATE: it did before). Last on a page with more of
    the window after it, it looked like the window's end, and the rest of the window went
    unread for good (599 activities). It is left out, and read with its new time by the
    run that follows; the window is read to its end."""
    from tap_pipedrive.sandbox.server import Engine

    last = edited != "mid-page"
    page = 50  # the windows read in several pages
    with Sandbox(seed=2, scale=3.0) as live:
        fired: list[t.Any] = []
        list_v2 = Engine.list_v2

        def edit_while_answering(engine: Engine, endpoint: str, params: dict[str, str]) -> t.Any:
            window = endpoint == "activities" and params.get("updated_until")
            if window and last:
                params = {**params, "limit": str(page)}
            answer, more = list_v2(engine, endpoint, params)
            data = answer.get("data") or []
            goes_on = bool((answer.get("additional_data") or {}).get("next_cursor"))
            due = len(data) == page and goes_on if last else len(data) > 3
            if window and due and not fired:
                row = data[-1] if last else data[len(data) // 2]
                live.touch("activities", ids=[row["id"]])
                row["update_time"] = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
                fired.append(row["id"])
            return answer, more

        monkeypatch.setattr(Engine, "list_v2", edit_while_answering)
        live.set_faults(latency_ms=250, burst_limit=40)  # a distant API: windows
        config = {"api_key": live.token, "api_url": live.url, "start_date": "2000-01-01"}
        catalog = select(discover(tmp_path, config), ["activities"])
        run = run_tap(tmp_path, config, catalog=catalog)
        assert run.returncode == 0, run.stderr[-2000:]
        assert fired, "no window was read"
        times = [r["update_time"] for r in run.records("activities")]
        assert times == sorted(times)
        expected = live.truth("activities", "2000-01-01T00:00:00Z")
        assert len(expected - run.ids("activities") - set(fired)) == 0, "records lost"
        monkeypatch.setattr(Engine, "list_v2", list_v2)
        again = run_tap(tmp_path, config, catalog=catalog, state=run.final_state)
        assert again.returncode == 0, again.stderr[-2000:]
        assert set(fired) <= again.ids("activities")


@pytest.mark.parametrize("stream_name", ["deals", "notes", "leads", "activities"])
def test_records_sharing_an_update_time_across_page_boundaries(
    stream_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sandbox gives groups of records one update time; with pages of 3 and 7 those
    groups straddle page boundaries, and every record must still arrive exactly once."""
    since = "2019-01-01T00:00:00Z"
    with Sandbox(seed=23, scale=0.3 if stream_name == "leads" else 0.1) as live:
        expected = live.truth(stream_name, since, with_deleted=stream_name in WITH_DELETED)
        for page_size in (3, 7):
            tap = TapPipedrive(
                config={"api_key": live.token, "api_url": live.url, "start_date": since}
            )
            stream = tap.streams[stream_name]
            monkeypatch.setattr(stream, "page_size", page_size)
            stream._write_starting_replication_value(None)
            records = [r for r in stream.get_records(None) if r.get("update_time")]
            times = [r["update_time"] for r in records]
            assert len(times) > len(set(times)), "no shared update times to test with"
            ids = [r["id"] for r in records]
            assert len(ids) == len(set(ids)) and set(ids) == expected, page_size


def test_start_date_with_a_timezone_offset_means_that_instant(
    sandbox: Sandbox, config: dict[str, str], tmp_path: Path
) -> None:
    catalog = select(discover(tmp_path, config), ["deals", "notes"])
    shifted = {**config, "start_date": "2023-03-01T02:00:00+02:00"}
    run = run_tap(tmp_path, shifted, catalog=catalog)
    assert run.returncode == 0, run.stderr[-2000:]
    for name in ("deals", "notes"):
        assert run.ids(name) == truth(sandbox, name, "2023-03-01T00:00:00Z"), name


def test_nothing_is_written_to_disk(config: dict[str, str], tmp_path: Path) -> None:
    """The tap writes only to stdout and stderr: no cache, no state file, no log file."""
    config_file = write_json(tmp_path / "config.json", config)
    work = tmp_path / "cwd"
    work.mkdir()
    done = subprocess.run(
        [*TAP, "--config", str(config_file)], cwd=work, capture_output=True, check=False
    )
    assert done.returncode == 0
    assert list(work.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "cwd"]


def test_a_custom_field_missing_from_the_catalog_still_arrives_and_is_reported(
    config: dict[str, str], tmp_path: Path
) -> None:
    """As if the field had been created in Pipedrive after discovery."""
    catalog = select(discover(tmp_path, config), ["deals"])
    [deals] = [entry for entry in catalog["streams"] if entry["tap_stream_id"] == "deals"]
    custom = [key for key in deals["schema"]["properties"] if re.fullmatch("[0-9a-f]{40}", key)]
    late = custom[0]
    del deals["schema"]["properties"][late]
    deals["metadata"] = [m for m in deals["metadata"] if m["breadcrumb"] != ["properties", late]]
    run = run_tap(tmp_path, config, catalog=catalog)
    assert run.returncode == 0, run.stderr[-2000:]
    assert any(record.get(late) is not None for record in run.records("deals"))
    assert "is not in the catalog" in run.stderr and late in run.stderr


def test_a_fault_that_outlasts_the_retries_ends_in_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    in_process_cli: None,
) -> None:
    """In-process, so the retries can be made short: every request answers 503."""
    monkeypatch.setattr(PipedriveStream, "backoff_base_seconds", 0.01)
    with Sandbox(seed=3, scale=0.05) as live:
        config = {"api_key": live.token, "api_url": live.url, "start_date": START_DATE}
        catalog = write_json(
            tmp_path / "catalog.json", select(discover(tmp_path, config), ["notes"])
        )
        live.set_faults(server_error_every=1)
        config_file = write_json(tmp_path / "config.json", config)
        monkeypatch.setattr(
            "sys.argv", ["tap-pipedrive", "--config", str(config_file), "--catalog", str(catalog)]
        )
        with pytest.raises(SystemExit) as exited:
            main()
    assert exited.value.code == 1
    err = capfd.readouterr().err
    assert "Traceback" not in err
    [line] = [x for x in err.splitlines() if x.startswith("tap-pipedrive: error:")]
    assert "still failing after 8 tries" in line and "Pipedrive answered" in line


@pytest.mark.parametrize("latency_ms", [0, 250])
def test_a_file_deleted_while_files_are_paged_costs_no_other_file(
    tmp_path: Path, latency_ms: int
) -> None:
    """`/v1/files` is read newest first by offsets: a file deleted after the first page
    shifts the rest by one, and the file at the next page's start slides under the offset
    unread, older than the bookmark the run ends with. The pages overlap by a record, so
    the run sees the list move and leaves the bookmark where it was: the next run reads
    that file. (Before: lost for good.) At 250 ms the pages are read side by side."""
    with Sandbox(seed=5, scale=0.2) as live:
        live.set_faults(latency_ms=latency_ms)
        answer = live.engine.list_v1
        deleted: list[t.Any] = []

        def delete_one_after_the_first_page(endpoint: str, params: dict[str, t.Any]) -> t.Any:
            body, ok = answer(endpoint, params)
            if endpoint == "files" and not deleted and str(params.get("start", "0")) == "0":
                deleted.append(body["data"][10]["id"])
                live.delete("files", deleted)
            return body, ok

        config = {"api_key": live.token, "api_url": live.url, "start_date": "2000-01-01"}
        catalog = select(discover(tmp_path, config), ["files"])
        live.engine.list_v1 = delete_one_after_the_first_page  # type: ignore[method-assign]
        first = run_tap(tmp_path, config, catalog=catalog)
        live.engine.list_v1 = answer  # type: ignore[method-assign]
        assert first.returncode == 0, first.stderr[-2000:]
        assert deleted, "no file was deleted"
        assert "files changed while it was read page by page" in first.stderr
        second = run_tap(tmp_path, config, catalog=catalog, state=first.final_state)
        assert second.returncode == 0, second.stderr[-2000:]
        live_files = live.truth("files", "2000-01-01T00:00:00Z") - set(deleted)
        assert live_files <= first.ids("files") | second.ids("files")


def test_every_record_matches_its_schema_with_timestamps_as_rfc3339(first_run: t.Any) -> None:
    """Every RECORD of every stream validates against its stream's SCHEMA, `date-time`
    checked as RFC 3339 and `date` as `YYYY-MM-DD`, nested ones included: a strict loader
    types columns by them. (A deal participant's `person.add_time` and the project fields'
    option times came in v1's `2024-05-01 10:20:00`.) The change log's untyped `data`
    carries its `*_time` values as RFC 3339 too."""
    from jsonschema import Draft7Validator, FormatChecker

    checker = FormatChecker(formats=())
    rfc3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")

    @checker.checks("date-time", raises=ValueError)
    def is_rfc3339(value: object) -> bool:
        if isinstance(value, str):
            if not rfc3339.fullmatch(value):
                raise ValueError(value)
            dt.datetime.fromisoformat(value)
        return True

    @checker.checks("date", raises=ValueError)
    def is_date(value: object) -> bool:
        if isinstance(value, str) and (len(value) != 10 or not dt.date.fromisoformat(value)):
            raise ValueError(value)
        return True

    validators: dict[str, Draft7Validator] = {}
    failures: dict[tuple[str, str], t.Any] = {}
    checked: dict[str, int] = {}
    for message in first_run.messages:
        if message["type"] == "SCHEMA":
            validators[message["stream"]] = Draft7Validator(
                message["schema"], format_checker=checker
            )
        elif message["type"] == "RECORD":
            stream, record = message["stream"], message["record"]
            checked[stream] = checked.get(stream, 0) + 1
            for error in validators[stream].iter_errors(record):
                where = "/".join(map(str, error.absolute_path))
                failures.setdefault((stream, where), error.message)
            if stream == "deal_flow":
                for key, value in (record.get("data") or {}).items():
                    timestamp = key.endswith("_time") and isinstance(value, str) and len(value) > 10
                    if timestamp and not rfc3339.fullmatch(value):
                        failures.setdefault((stream, f"data/{key}"), value)
    assert not failures
    assert {"deal_participants", "deal_flow", "project_fields"} <= set(checked)


def test_the_connection_test_describes_every_stream_it_reads(
    config: dict[str, str], tmp_path: Path
) -> None:
    """`--test` (what `meltano config <tap> test` runs) selects every stream, off-by-default
    ones too, and writes one record of each: their SCHEMA lists the properties those
    records carry. The SDK built its stream maps from the selection at start, so a stream
    selected later went out with a schema of no properties and a full record. Stopping
    each stream after one record is the test working, not an error to log. Every stream
    the sandbox has records for writes one, deals and their children included."""
    run = run_tap(tmp_path, config, extra_args=["--test"])
    assert run.returncode == 0, run.stderr[-3000:]
    assert "| ERROR" not in run.stderr
    schemas = {m["stream"]: m["schema"] for m in run.messages if m["type"] == "SCHEMA"}
    records = [m for m in run.messages if m["type"] == "RECORD"]
    off_by_default = {"deal_participants", "mail_threads", "project_boards"}
    assert off_by_default <= {m["stream"] for m in records}
    # A child's stop after its first record (a deal's participants) ended the deal's
    # sync too, before its first record; deal products wait for a batch of 100 deals.
    assert {m["stream"] for m in records} == set(schemas)
    for message in records:
        properties = schemas[message["stream"]]["properties"]
        assert set(message["record"]) <= set(properties), message["stream"]


def test_a_field_renamed_after_discovery_keeps_its_catalog_column_and_selection(
    tmp_path: Path,
) -> None:
    """Name mode, a catalog discovered once and reused (plain Singer, or Meltano's cached
    catalog): a person field the user deselected (PII) is renamed in Pipedrive. Its values
    stayed out before; after the rename they came back under a new column the catalog did
    not know, and the old column went out empty."""
    with Sandbox(seed=1, scale=0.02) as sandbox:
        config = {"api_key": sandbox.token, "api_url": sandbox.url, "start_date": START_DATE,
                  "custom_field_names": "name"}  # fmt: skip
        catalog = select(discover(tmp_path, config), ["persons"])
        [persons] = [entry for entry in catalog["streams"] if entry["tap_stream_id"] == "persons"]
        for meta in persons["metadata"]:
            if meta["breadcrumb"][-1:] and meta["breadcrumb"][-1].startswith("home_address"):
                meta["metadata"]["selected"] = False
        [field] = [f for f in sandbox.data.custom_fields["person"] if f.name == "Home address"]
        field.name = "Address (home)"
        run = run_tap(tmp_path, config, catalog=catalog)
    assert run.returncode == 0, run.stderr[-2000:]
    keys = {key for record in run.records("persons") for key in record}
    assert not {key for key in keys if "address_home" in key or "home_address" in key}
    assert "is not in the catalog" not in run.stderr


def test_a_bookmark_moved_back_is_read_from_even_if_nothing_changed(tmp_path: Path) -> None:
    """Moving a bookmark back (`meltano state set`) is how a stretch is read again: the
    stream must not be skipped as unchanged since its last sync."""
    with Sandbox(seed=11, scale=0.02) as sandbox:
        config = {"api_key": sandbox.token, "api_url": sandbox.url, "start_date": START_DATE}
        catalog = select(discover(tmp_path, config), ["deals", "persons"])
        first = run_tap(tmp_path, config, catalog=catalog)
        assert first.returncode == 0, first.stderr[-2000:]
        state = copy.deepcopy(first.final_state)
        state["bookmarks"]["deals"]["replication_key_value"] = START_DATE
        again = run_tap(tmp_path, config, catalog=catalog, state=state)
        assert again.returncode == 0, again.stderr[-2000:]
        assert again.ids("deals") == truth(sandbox, "deals")
    assert not again.records("persons")  # unchanged, bookmark untouched: skipped


def test_deal_products_alone_read_only_the_deals_changed_since_the_last_walk(
    tmp_path: Path,
) -> None:
    """deal_products selected without deals: the SDK keeps no bookmark for the deselected
    parent, so every run read every deal and sent every product again (tokens, and the
    whole table to the target each time). The walk now starts where the last one ended."""
    with Sandbox(seed=13, scale=0.05) as sandbox:
        config = {"api_key": sandbox.token, "api_url": sandbox.url, "start_date": START_DATE}
        catalog = select(discover(tmp_path, config), ["deal_products"])
        first = run_tap(tmp_path, config, catalog=catalog)
        assert first.returncode == 0, first.stderr[-2000:]
        # Archived deals' products too: archived_deals is walked for them, deselected.
        assert first.ids("deal_products") == sandbox.truth("deal_products", START_DATE)
        walked = first.final_state["bookmarks"]["deals"]
        assert "walked_to" in walked and "replication_key_value" not in walked
        assert "walked_to" in first.final_state["bookmarks"]["archived_deals"]
        touched = set(sandbox.touch("deals", n=3))
        # The deals a walk from `walked_to` reads: the touched ones, and those of that
        # second (the filter is inclusive), sent again.
        archived = first.final_state["bookmarks"]["archived_deals"]["walked_to"]
        since_walk = sandbox.truth("deals", walked["walked_to"]) | sandbox.truth(
            "archived_deals", archived
        )
        second = run_tap(tmp_path, config, catalog=catalog, state=first.final_state)
    assert second.returncode == 0, second.stderr[-2000:]
    assert not second.records("deals")
    sent_for = {r["deal_id"] for r in second.records("deal_products")}
    assert touched <= since_walk and len(since_walk) < 10
    assert sent_for & touched and sent_for <= since_walk
    assert len(first.records("deal_products")) > 5 * len(second.records("deal_products"))


def test_a_parent_walked_only_for_its_children_is_not_marked_synced(
    config: dict[str, str], tmp_path: Path, sandbox: Sandbox
) -> None:
    """deal_products alone walks the deals without sending them: selecting deals later
    must send every deal, not skip them as synced and unchanged."""
    discovered = discover(tmp_path, config)
    first = run_tap(tmp_path, config, catalog=select(copy.deepcopy(discovered), ["deal_products"]))
    assert first.returncode == 0, first.stderr[-2000:]
    assert not first.records("deals") and first.records("deal_products")
    # The usage lines count what is sent: no deals.
    assert "API usage: deals: " not in first.stderr or "deals: 0 records" in first.stderr
    both = select(discovered, ["deals", "deal_products"])
    second = run_tap(tmp_path, config, catalog=both, state=first.final_state)
    assert second.returncode == 0, second.stderr[-2000:]
    assert second.ids("deals") == truth(sandbox, "deals")


def test_a_table_version_is_activated_only_once_the_whole_table_is_sent(
    tmp_path: Path,
) -> None:
    """With `emit_activate_version_messages`, a target drops a table's rows of older
    versions. The SDK sent ACTIVATE_VERSION before the first record: for a table then
    skipped as unchanged (pipelines, stages: every row dropped) and for deal products,
    which hold only the changed deals' rows. Now: after a complete table, and only then."""
    with Sandbox(seed=5, scale=0.02) as sandbox:
        config = {"api_key": sandbox.token, "api_url": sandbox.url, "start_date": START_DATE,
                  "emit_activate_version_messages": True}  # fmt: skip
        catalog = select(discover(tmp_path, config), [*STREAMS, "deal_participants"])
        first = run_tap(tmp_path, config, catalog=catalog)
        assert first.returncode == 0, first.stderr[-2000:]
        sandbox.touch("deals", n=2)
        second = run_tap(tmp_path, config, catalog=catalog, state=first.final_state)
        assert second.returncode == 0, second.stderr[-2000:]

    def activated(run: t.Any) -> set[str]:
        streams = set()
        for at, message in enumerate(run.messages):
            if message["type"] == "ACTIVATE_VERSION":
                name = message["stream"]
                later = [m for m in run.messages[at:] if m.get("stream") == name]
                assert not [m for m in later if m["type"] == "RECORD"], name  # none after
                streams.add(name)
        return streams

    children = {*DEAL_CHILDREN, "mail_messages", "project_phases"}  # their parents' rows
    full_tables = {name for name, key in STREAMS.items() if key is None} - children
    assert activated(first) == full_tables
    assert {"pipelines", "stages", "currencies"} <= full_tables
    assert not second.records("pipelines") and not second.records("stages")
    assert second.records("deal_products") and second.records("currencies")
    assert activated(second) == {name for name in full_tables if second.records(name)}


def test_a_deletion_keeps_its_marker_whatever_columns_are_selected(tmp_path: Path) -> None:
    """A catalog selecting a few columns of persons (an ordinary field list) sent a
    deleted person as `{"id": 5, "update_time": null}`, an update blanking the row."""
    with Sandbox(seed=17, scale=0.02) as live:
        config = {"api_key": live.token, "api_url": live.url, "start_date": START_DATE}
        catalog = select(discover(tmp_path, config), ["persons"])
        [persons] = [entry for entry in catalog["streams"] if entry["tap_stream_id"] == "persons"]
        for meta in persons["metadata"]:
            if meta["breadcrumb"]:
                column = meta["breadcrumb"][-1]
                meta["metadata"]["selected"] = column in {"id", "name", "update_time"}
                if column == "_sdc_deleted_at":  # as a catalog discovered before said
                    meta["metadata"]["inclusion"] = "available"
        first = run_tap(tmp_path, config, catalog=catalog)
        assert first.returncode == 0, first.stderr[-2000:]
        victim = sorted(first.ids("persons"))[0]
        live.delete("persons", [victim])
        second = run_tap(tmp_path, config, catalog=catalog, state=first.final_state)
    assert second.returncode == 0, second.stderr[-2000:]
    [deleted] = [r for r in second.records("persons") if r["id"] == victim]
    assert deleted.get("_sdc_deleted_at")
    [schema] = [m["schema"] for m in second.messages if m["type"] == "SCHEMA"]
    assert "_sdc_deleted_at" in schema["properties"] and "emails" not in schema["properties"]


@pytest.mark.parametrize("wrap", ["meltano", "message", "null key"])
def test_a_state_as_meltano_prints_it_or_without_its_replication_key_is_resumed_from(
    first_run, config: dict[str, str], tmp_path: Path, sandbox: Sandbox, wrap: str
) -> None:
    """`meltano state get` prints `{"singer_state": ...}` and a STATE line wraps the state
    in `value`: both counted as no state, a silent backfill. A bookmark written by hand
    without `replication_key` was ignored, then the run died on "unsorted data"."""
    bookmark = first_run.final_state["bookmarks"]["deals"]["replication_key_value"]
    state = {"bookmarks": {"deals": {"replication_key_value": bookmark}}}
    wrapped = {"singer_state": state} if wrap == "meltano" else {"type": "STATE", "value": state}
    if wrap == "null key":
        wrapped = {"bookmarks": {"deals": {"replication_key": None, **state["bookmarks"]["deals"]}}}
    catalog = select(discover(tmp_path, config), ["deals"])
    run = run_tap(tmp_path, config, catalog=catalog, state=wrapped)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    assert run.ids("deals") == truth(sandbox, "deals", bookmark)


def test_flattened_records_match_their_flattened_schema(
    config: dict[str, str], tmp_path: Path
) -> None:
    """With `flattening_enabled`, deal_flow's SCHEMA lost its free-form `data` while its
    records carried `data__id`, `data__old_value`, ...: a target building columns from
    the SCHEMA dropped the change log. A deal participant's person carried custom fields
    the SCHEMA did not declare (`person__<key>`), and a null object (a person's `org_id`)
    stayed one column the SCHEMA split into columns of its own."""
    flat = {**config, "flattening_enabled": True, "flattening_max_depth": 3}
    streams = ["deals", "deal_flow", "files", "deal_participants", "persons"]
    catalog = select(discover(tmp_path, flat), streams)
    [flow] = [entry for entry in catalog["streams"] if entry["tap_stream_id"] == "deal_flow"]
    flow["schema"]["properties"]["data"]["properties"] = {}  # as older catalogs have it
    run = run_tap(tmp_path, flat, catalog=catalog)
    assert run.returncode == 0, run.stderr[-2000:]
    schemas = {m["stream"]: m["schema"] for m in run.messages if m["type"] == "SCHEMA"}
    for stream in streams:
        records = run.records(stream)
        assert records, stream
        keys = {key for record in records for key in record}
        assert keys <= set(schemas[stream]["properties"]), (
            stream,
            keys - set(schemas[stream]["properties"]),
        )
    assert {"data", "deal_id", "object"} <= {k for r in run.records("deal_flow") for k in r}
    assert any(r.get("person__org_id") is None for r in run.records("deal_participants"))


def test_a_deal_participants_person_has_the_persons_custom_field_columns(
    tmp_path: Path,
) -> None:
    """The person nested in a deal participant is a v1 person record: its custom fields
    sat there under their 40-character keys, untyped, whatever `custom_field_names`."""
    with Sandbox(seed=3, scale=0.02) as sandbox:
        config = {"api_key": sandbox.token, "api_url": sandbox.url, "start_date": START_DATE,
                  "custom_field_names": "name"}  # fmt: skip
        catalog = select(discover(tmp_path, config), ["deals", "deal_participants", "persons"])
        run = run_tap(tmp_path, config, catalog=catalog)
    assert run.returncode == 0, run.stderr[-2000:]
    schemas = {m["stream"]: m["schema"] for m in run.messages if m["type"] == "SCHEMA"}
    nested = schemas["deal_participants"]["properties"]["person"]["properties"]
    person_columns = set(schemas["persons"]["properties"])
    custom = {k for k, v in nested.items() if "Custom field" in str(v.get("description"))}
    assert custom and custom <= person_columns
    for column in custom:
        assert nested[column] == schemas["persons"]["properties"][column]
    people = {r["id"]: r for r in run.records("persons")}
    compared = 0
    for participant in run.records("deal_participants"):
        person = participant["person"]
        assert not {k for k in person if re.search(r"[0-9a-f]{40}", k)}
        if person["id"] in people and person["update_time"] == people[person["id"]]["update_time"]:
            assert {k: person.get(k) for k in custom} == {
                k: people[person["id"]].get(k) for k in custom
            }
            compared += 1
    assert compared


def test_in_batch_mode_a_version_is_activated_after_the_tables_last_batch(
    config: dict[str, str], tmp_path: Path
) -> None:
    """BATCH messages follow the records' generator: the version was activated before the
    table's last BATCH (its only one, for a table smaller than a batch)."""
    batch_config = {"encoding": {"format": "jsonl", "compression": "none"},
                    "storage": {"root": f"file://{tmp_path}"}, "batch_size": 5}  # fmt: skip
    batched = {**config, "emit_activate_version_messages": True, "batch_config": batch_config}
    run = run_tap(tmp_path, batched, catalog=select(discover(tmp_path, batched), ["users"]))
    assert run.returncode == 0, run.stderr[-2000:]
    kinds = [m["type"] for m in run.messages if m.get("stream") == "users"]
    assert kinds.count("BATCH") >= 2 and kinds[-1] == "ACTIVATE_VERSION", kinds


def test_a_stream_now_read_whole_is_read_whole_after_the_upgrade(tmp_path: Path) -> None:
    """users was bookmarked on `modified` and filtered by it; read whole now, its old
    bookmark (synced, unchanged since) let it be skipped before it ever sent the users the
    old filter left out."""
    with Sandbox(seed=11, scale=0.02) as sandbox:
        config = {"api_key": sandbox.token, "api_url": sandbox.url, "start_date": START_DATE}
        catalog = select(discover(tmp_path, config), ["users"])
        first = run_tap(tmp_path, config, catalog=catalog)
        assert first.returncode == 0, first.stderr[-2000:]
        state = copy.deepcopy(first.final_state)
        assert state["bookmarks"]["users"]["synced_at"]
        state["bookmarks"]["users"].update(  # what the old filter left behind
            replication_key="modified", replication_key_value="2022-07-16T13:58:00+00:00",
            synced_bookmark="2022-07-16T13:58:00+00:00")  # fmt: skip
        again = run_tap(tmp_path, config, catalog=catalog, state=state)
        assert again.returncode == 0, again.stderr[-2000:]
        assert again.ids("users") == truth(sandbox, "users")


def test_a_catalog_from_when_users_was_incremental_still_lets_it_be_skipped(
    tmp_path: Path,
) -> None:
    """A catalog discovered when users was bookmarked on `modified` (Meltano keeps one
    cached) made it incremental again: every run wrote that bookmark, the next dropped it
    as stale, and users was read on every run of an unchanged account."""
    with Sandbox(seed=11, scale=0.02) as sandbox:
        config = {"api_key": sandbox.token, "api_url": sandbox.url, "start_date": START_DATE}
        catalog = select(discover(tmp_path, config), ["users", "stages"])
        [users] = [entry for entry in catalog["streams"] if entry["tap_stream_id"] == "users"]
        users["replication_key"], users["replication_method"] = "modified", "INCREMENTAL"
        for meta in users["metadata"]:
            if meta["breadcrumb"] == []:
                meta["metadata"].update({"valid-replication-keys": ["modified"],
                                         "replication-key": "modified",
                                         "forced-replication-method": "INCREMENTAL"})  # fmt: skip
        first = run_tap(tmp_path, config, catalog=catalog)
        assert first.returncode == 0, first.stderr[-2000:]
        assert first.ids("users") == truth(sandbox, "users")
        state = first.final_state
        for _ in range(2):
            again = run_tap(tmp_path, config, catalog=catalog, state=state)
            assert again.returncode == 0, again.stderr[-2000:]
            assert not again.records("users") and not again.records("stages")
            state = again.final_state
