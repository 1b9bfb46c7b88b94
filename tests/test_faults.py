"""Faults survived with nothing lost: the tap against the sandbox with faults switched on,
its output compared with the sandbox's ground truth."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
import typing as t
from pathlib import Path

import pytest

from tap_pipedrive.sandbox import LISTED_WITH_DELETED as WITH_DELETED
from tap_pipedrive.sandbox import Faults, Sandbox
from tap_pipedrive.streams import STREAM_TYPES
from tests.helpers import TAP, TapRun, discover, run_tap, select, write_json

START_DATE = "2023-01-01T00:00:00Z"
DEFAULT_STREAMS = [
    c.name for c in STREAM_TYPES if c.selected_by_default and c.name != "deal_products"
]


def config_for(sandbox: Sandbox, **extra: t.Any) -> dict[str, t.Any]:
    return {"api_key": sandbox.token, "api_url": sandbox.url, "start_date": START_DATE, **extra}


def assert_complete(sandbox: Sandbox, *runs: t.Any) -> None:
    """Every stream's records, across the runs given, equal the ground truth."""
    for name in DEFAULT_STREAMS:
        got = set().union(*(run.ids(name) for run in runs))
        assert got == sandbox.truth(name, START_DATE, with_deleted=name in WITH_DELETED), name


@pytest.fixture(scope="module")
def baseline_requests(tmp_path_factory: pytest.TempPathFactory) -> int:
    """How many requests a clean run makes, to show the faulty runs retried."""
    with Sandbox(seed=31, scale=0.05) as clean:
        run = run_tap(tmp_path_factory.mktemp("clean"), config_for(clean))
        assert run.returncode == 0, run.stderr[-2000:]
        return clean.request_count()


@pytest.mark.parametrize("headers", ["all", "ratelimit", "retry-after", "none"])
def test_bursts_of_429_are_waited_out(headers: str, baseline_requests: int, tmp_path: Path) -> None:
    faults = Faults(rate_limit_every=8, rate_limit_headers=headers)
    with Sandbox(seed=31, scale=0.05, faults=faults) as sandbox:
        run = run_tap(tmp_path, config_for(sandbox))
        assert run.returncode == 0, run.stderr[-2000:]
        assert_complete(sandbox, run)
        assert sandbox.request_count() > baseline_requests  # the 429s were retried
        assert "Traceback" not in run.stderr


def test_5xx_storm_including_520_and_524(baseline_requests: int, tmp_path: Path) -> None:
    with Sandbox(seed=31, scale=0.05, faults=Faults(server_error_every=4)) as sandbox:
        run = run_tap(tmp_path, config_for(sandbox))
        assert run.returncode == 0, run.stderr[-2000:]
        assert_complete(sandbox, run)
        assert sandbox.request_count() >= 1.2 * baseline_requests
        for status in ("500", "502", "503", "520", "524"):
            assert re.search(rf"Pipedrive answered {status}\b", run.stderr), status


def test_dropped_connections_and_timeouts_mid_page(tmp_path: Path) -> None:
    faults = Faults(drop_every=7, stall_every=11, stall_seconds=2.0)
    with Sandbox(seed=31, scale=0.05, faults=faults) as sandbox:
        run = run_tap(tmp_path, config_for(sandbox, request_timeout=1))
        assert run.returncode == 0, run.stderr[-2000:]
        assert_complete(sandbox, run)
        assert "ConnectionError" in run.stderr and "Timeout" in run.stderr


def test_truncated_and_non_json_bodies_with_status_200(tmp_path: Path) -> None:
    with Sandbox(
        seed=31, scale=0.05, faults=Faults(truncate_once=True, non_json_once=True)
    ) as sandbox:
        run = run_tap(tmp_path, config_for(sandbox))
        assert run.returncode == 0, run.stderr[-2000:]
        assert_complete(sandbox, run)
        assert "not valid JSON" in run.stderr


def test_a_body_that_trickles_in_is_given_up_at_request_timeout(tmp_path: Path) -> None:
    """`request_timeout` bounds the whole answer, not each read of the socket: a body sent
    a byte every 0.25 s (a stalling proxy) is dropped after it and the page asked again.
    (Before: the run waited on it, for hours at this page's size.)"""
    with Sandbox(seed=31, scale=0.05, faults=Faults(trickle_once=True)) as sandbox:
        run = run_tap(tmp_path, config_for(sandbox, request_timeout=2), timeout=120)
        assert run.returncode == 0, run.stderr[-2000:]
        assert_complete(sandbox, run)
        assert "took longer than request_timeout" in run.stderr


#: Requests the tap may have in flight when the first fatal answer arrives: at most one
#: at a time, or up to the default `max_concurrent_requests`, 8, besides the failed one.
IN_FLIGHT = pytest.mark.parametrize("concurrency, in_flight", [(1, 0), (8, 7)])


@IN_FLIGHT
def test_daily_budget_spent_stops_at_once_with_a_resumable_state(
    tmp_path: Path, concurrency: int, in_flight: int
) -> None:
    with Sandbox(seed=31, scale=0.3, faults=Faults(budget_exhausted_after=12)) as sandbox:
        config = {**config_for(sandbox), "max_concurrent_requests": concurrency}
        spent = run_tap(tmp_path, config)
        assert spent.returncode != 0
        assert "Traceback" not in spent.stderr
        [line] = [x for x in spent.stderr.splitlines() if x.startswith("tap-pipedrive: error:")]
        assert "daily API token budget" in line
        # No retry loop on a 429 hours away, and nothing sent after it.
        assert sandbox.request_count() <= 13 + in_flight
        assert spent.final_state.get("bookmarks"), "no STATE before stopping"
        sandbox.set_faults(budget_exhausted_after=0)
        resumed = run_tap(tmp_path, config, state=spent.final_state)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        assert_complete(sandbox, spent, resumed)


@IN_FLIGHT
def test_html_403_block_page_stops_at_once(
    tmp_path: Path, concurrency: int, in_flight: int
) -> None:
    with Sandbox(seed=31, scale=0.05, faults=Faults(block_after=8)) as sandbox:
        config = {**config_for(sandbox), "max_concurrent_requests": concurrency}
        run = run_tap(tmp_path, config)
        assert run.returncode != 0
        assert "Traceback" not in run.stderr
        [line] = [x for x in run.stderr.splitlines() if x.startswith("tap-pipedrive: error:")]
        assert "403" in line and "block page" in line
        assert 9 <= sandbox.request_count() <= 9 + in_flight  # no retry storm


#: An account without the Projects add-on (403, as Pipedrive refuses a feature the plan
#: lacks) whose token's user may not read permission sets, on an API without goals (404).
REFUSED = {
    "projects": "/api/v2/projects=403",
    "archived_projects": "/api/v2/projects/archived=403",
    "project_fields": "/api/v2/projectFields=403",
    "tasks": "/api/v2/tasks=403",
    "permission_sets": "/v1/permissionSets=403",
    "goals": "/v1/goals/find=404",
}


@IN_FLIGHT
def test_streams_pipedrive_refuses_are_skipped_and_the_rest_arrive_whole(
    tmp_path: Path, concurrency: int, in_flight: int
) -> None:
    refused = Faults(refused_paths=",".join(REFUSED.values()))
    with Sandbox(seed=31, scale=0.05, faults=refused) as sandbox:
        config = {**config_for(sandbox), "max_concurrent_requests": concurrency}
        run = run_tap(tmp_path, config)
        assert run.returncode == 0, run.stderr[-2000:]
        assert "Traceback" not in run.stderr
        for name in DEFAULT_STREAMS:
            if name in REFUSED:
                assert not run.records(name), name
                [line] = [x for x in run.stderr.splitlines() if f"Stream '{name}' skipped" in x]
                assert ("403 Forbidden" if "403" in REFUSED[name] else "404") in line, line
            else:
                truth = sandbox.truth(name, START_DATE, with_deleted=name in WITH_DELETED)
                assert run.ids(name) == truth, name
        assert (
            f"{len(REFUSED)} selected stream(s) skipped, refused by Pipedrive: "
            + ", ".join(sorted(REFUSED))
            in run.stderr
        )
        # Not once more per partition; side by side, their first pages were on their way.
        assert sandbox.request_count("/v1/goals/find") <= (1 if concurrency == 1 else 4)
        bookmarks = run.final_state["bookmarks"]
        assert not any(bookmarks.get(name) for name in REFUSED)  # none moved, none synced


DEAL_FIELD_STREAMS = {"deals", "archived_deals", "leads", "archived_leads", "deal_fields"}


def test_streams_whose_custom_field_definitions_are_refused_are_skipped(tmp_path: Path) -> None:
    """Without `/v1/dealFields` no deal custom field can be named or typed: the streams that
    carry them are skipped (bookmarks kept), not sent with raw 40-character hash keys and
    v1's raw shapes under a SCHEMA that types them otherwise; the rest arrive whole."""
    refused = Faults(refused_paths="/v1/dealFields=403")
    with Sandbox(seed=31, scale=0.05, faults=refused) as sandbox:
        run = run_tap(tmp_path, config_for(sandbox, custom_field_names="name"))
        assert run.returncode == 0, run.stderr[-2000:]
        for name in DEFAULT_STREAMS:
            if name in DEAL_FIELD_STREAMS:
                assert not run.records(name), name
                [line] = [x for x in run.stderr.splitlines() if f"Stream '{name}' skipped" in x]
                assert "/dealFields (403 Forbidden)" in line, line
            else:
                truth = sandbox.truth(name, START_DATE, with_deleted=name in WITH_DELETED)
                assert run.ids(name) == truth, name
        hex_key = re.compile("[0-9a-f]{40}")
        assert not [k for m in run.messages if m["type"] == "RECORD" for k in m["record"]
                    if hex_key.fullmatch(k)]  # fmt: skip
        bookmarks = run.final_state["bookmarks"]
        assert not any(bookmarks.get(name) for name in DEAL_FIELD_STREAMS)


def test_deal_participants_are_skipped_when_the_person_fields_are_refused(
    tmp_path: Path,
) -> None:
    """A participant's person carries the person custom fields: without `/v1/personFields`
    they could only go out under their hash keys, so the participants are skipped too."""
    refused = Faults(refused_paths="/v1/personFields=403")
    with Sandbox(seed=31, scale=0.05, faults=refused) as sandbox:
        config = config_for(sandbox, custom_field_names="name")
        catalog = select(discover(tmp_path, config), ["deals", "deal_participants"])
        run = run_tap(tmp_path, config, catalog=catalog)
        assert run.returncode == 0, run.stderr[-2000:]
        assert run.ids("deals") == sandbox.truth("deals", START_DATE, with_deleted=True)
    assert not run.records("deal_participants")
    [line] = [x for x in run.stderr.splitlines() if "Stream 'deal_participants' skipped" in x]
    assert "/personFields (403 Forbidden)" in line, line


def test_a_walk_for_deal_products_pipedrive_refuses_keeps_its_place(tmp_path: Path) -> None:
    """deal_products alone: the deals are walked for it, from where the last complete walk
    ended. Refused this run (403), the products were skipped but the walk moved on, and
    the deals changed meanwhile never had their products read."""
    with Sandbox(seed=31, scale=0.05) as sandbox:
        config = config_for(sandbox)
        catalog = select(discover(tmp_path, config), ["deal_products"])
        first = run_tap(tmp_path, config, catalog=catalog)
        assert first.returncode == 0, first.stderr[-2000:]
        walked = first.final_state["bookmarks"]["deals"]["walked_to"]
        touched = set(sandbox.touch("deals", n=5))
        sandbox.set_faults(refused_paths="/api/v2/deals/products=403")
        refused = run_tap(tmp_path, config, catalog=catalog, state=first.final_state)
        assert refused.returncode == 0, refused.stderr[-2000:]
        assert "Stream 'deal_products' skipped" in refused.stderr
        assert refused.final_state["bookmarks"]["deals"]["walked_to"] == walked
        sandbox.set_faults(refused_paths="")
        again = run_tap(tmp_path, config, catalog=catalog, state=refused.final_state)
        assert again.returncode == 0, again.stderr[-2000:]
        having_products = {d for d in touched if sandbox.data.deal_products(d - 1)}
        assert having_products
        assert having_products <= {r["deal_id"] for r in again.records("deal_products")}


def test_field_definitions_answered_with_an_error_stop_the_run_in_one_line(
    tmp_path: Path,
) -> None:
    """A `200` whose body says `success: false` stops the tap, for the field definitions as
    for a list (it went on with custom fields untyped under their keys, exit 0)."""
    with Sandbox(seed=31, scale=0.05) as sandbox:
        answer = sandbox.engine.fields_v1

        def failing(name: str, params: dict[str, str]) -> tuple[dict[str, t.Any], bool]:
            if name == "dealFields":
                return {"success": False, "error": "Internal error", "data": None}, False
            return answer(name, params)

        sandbox.engine.fields_v1 = failing  # type: ignore[method-assign]
        run = run_tap(tmp_path, config_for(sandbox))
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert (
        last == "tap-pipedrive: error: Pipedrive reported an error for /dealFields: Internal error"
    )
    assert not run.records("deals")


def test_a_wrong_api_url_is_one_line_not_every_stream_skipped(tmp_path: Path) -> None:
    """A server answering 404 everywhere: once two lists every account has answered 404
    with nothing answered before, the run stops (it tried and skipped every stream, a
    warning each saying to deselect it, 23 requests and 32 warnings)."""
    with Sandbox(seed=31, scale=0.05) as sandbox:
        run = run_tap(tmp_path, config_for(sandbox, api_url=sandbox.url + "/nothing-here"))
        assert run.returncode == 1
        assert "Traceback" not in run.stderr
        last = run.stderr.strip().splitlines()[-1]
        assert last.startswith("tap-pipedrive: error: Pipedrive answered 404"), last
        assert "no request of this run succeeded: check api_url" in last
        assert not run.records("deals")
        skipped = [line for line in run.stderr.splitlines() if "skipped: " in line]
        assert len(skipped) < 10, skipped


def test_target_exiting_early_ends_the_tap_quietly(tmp_path: Path) -> None:
    with Sandbox(seed=31, scale=0.3) as sandbox:
        config_file = write_json(tmp_path / "config.json", config_for(sandbox))
        tap = subprocess.Popen(
            [*TAP, "--config", str(config_file)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert tap.stdout is not None
        tap.stdout.readline()
        tap.stdout.close()  # the target is gone
        _, stderr = tap.communicate(timeout=120)
        text = stderr.decode()
        assert "Traceback" not in text
        assert "the target stopped reading (broken pipe)" in text
        assert tap.returncode != 0


def test_the_token_never_appears_in_any_output_on_any_path(tmp_path: Path) -> None:
    token = "sandbox-secret-token-0f9e8d7c"
    outputs = []
    scenarios: list[tuple[Faults, dict[str, t.Any]]] = [
        (Faults(), {}),
        (Faults(), {"api_key": "wrong-" + token}),
        (Faults(rate_limit_every=9, rate_limit_headers="none", server_error_every=10), {}),
        (Faults(budget_exhausted_after=5), {}),
        (Faults(block_after=5), {}),
        (Faults(drop_every=9, truncate_once=True, non_json_once=True), {}),
    ]
    for faults, extra in scenarios:
        with Sandbox(seed=31, scale=0.05, token=token, faults=faults) as sandbox:
            run = run_tap(tmp_path, config_for(sandbox, **extra), env={"LOGLEVEL": "DEBUG"})
            outputs.append(run.stdout + run.stderr)
            for _, path, query, _ in sandbox.requests:
                assert token not in path and token not in str(query)
    assert any("DEBUG" in output for output in outputs), "debug logging was not on"
    for output in outputs:
        assert token not in output
        assert "wrong-" + token not in output


def start_tap(
    tmp_path: Path, config: dict[str, t.Any], state: dict[str, t.Any] | None = None
) -> subprocess.Popen[bytes]:
    """The CLI, its output to files (a pipe nobody reads would block it)."""
    state_args = ["--state", str(write_json(tmp_path / "state.json", state))] if state else []
    return subprocess.Popen(
        [*TAP, "--config", str(write_json(tmp_path / "config.json", config)), *state_args],
        stdout=(tmp_path / "stdout").open("wb"),
        stderr=(tmp_path / "stderr").open("wb"),
    )


def wait_for_request(sandbox: Sandbox, path: str, tap: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while not sandbox.request_count(path):
        assert time.monotonic() < deadline and tap.poll() is None, f"no request to {path}"
        time.sleep(0.01)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_run_non_zero_with_a_state_that_loses_nothing(
    signum: int, tmp_path: Path
) -> None:
    """SIGTERM (cron's `timeout`, Meltano cancelling) or SIGINT while a batch of deal
    products is on the wire: the run exits 128 + the signal's number with one line, and
    its last STATE holds the deals bookmark back, so the resumed run reads those deals and
    their products again. (Before: exit 0, as if the run had finished, and a STATE past the
    deals, marked synced: the resumed run skipped them and every product was lost.)"""
    with Sandbox(seed=31, scale=0.1, faults=Faults(latency_ms=200)) as sandbox:
        tap = start_tap(tmp_path, config_for(sandbox))
        wait_for_request(sandbox, "/api/v2/deals/products", tap)
        time.sleep(0.1)  # the batch is on the wire: 200 ms a response
        tap.send_signal(signum)
        tap.wait(timeout=60)
        stderr = (tmp_path / "stderr").read_text()
        stopped = TapRun(tap.returncode, (tmp_path / "stdout").read_text(), stderr)
        name = signal.Signals(signum).name
        assert stopped.returncode == 128 + signum, stderr[-2000:]
        assert stderr.strip().splitlines()[-1] == (
            f"tap-pipedrive: stopped by {name}; the last STATE written lets the next run resume"
        )
        assert "Traceback" not in stderr
        assert not stopped.records("deal_products"), "the signal came too late to test this"
        sandbox.set_faults(latency_ms=0)
        resumed = run_tap(tmp_path, config_for(sandbox), state=stopped.final_state)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        assert_complete(sandbox, stopped, resumed)
        products = stopped.ids("deal_products") | resumed.ids("deal_products")
        assert products == sandbox.truth("deal_products", START_DATE)


def test_a_signal_does_not_wait_for_a_stalled_request_to_time_out(tmp_path: Path) -> None:
    """Requests in flight are not waited for at exit: with `/v1/recents` (read beside the
    first pages) stalled for 30 s, SIGTERM ends the run at once and no request is sent
    after it. (Before: the thread reading recents kept the process alive, retrying, for
    minutes.)"""
    faults = Faults(stall_every=1, stall_seconds=30, stall_path="/v1/recents")
    # A bookmark for persons: deletions since it are read there (a first sync reads none).
    bookmark = {"replication_key": "update_time", "replication_key_value": START_DATE}
    state = {"bookmarks": {"persons": bookmark}}
    with Sandbox(seed=31, scale=0.1, faults=faults) as sandbox:
        tap = start_tap(tmp_path, config_for(sandbox, request_timeout=10), state)
        wait_for_request(sandbox, "/v1/recents", tap)
        time.sleep(1.0)  # the other streams go on meanwhile, or wait for recents
        sent = sandbox.request_count()
        tap.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        tap.wait(timeout=60)
        assert time.monotonic() - signalled < 5, "the stalled request held the exit"
        assert tap.returncode == 128 + signal.SIGTERM, (tmp_path / "stderr").read_text()
        time.sleep(1)
        assert sandbox.request_count() <= sent + 1  # one may have left as the signal came


def test_whitespace_around_the_token_is_not_sent(tmp_path: Path) -> None:
    """A token file's newline or a pasted space around the token: the tap sends the token
    without it. (Before: requests refused the header, reported as a network error.)"""
    with Sandbox(seed=31, scale=0.05) as sandbox:
        config = {**config_for(sandbox), "api_key": f" {sandbox.token}\n"}
        run = run_tap(tmp_path, config)
        assert run.returncode == 0, run.stderr[-2000:]
        assert_complete(sandbox, run)


def test_a_signal_while_the_target_reads_slowly_cuts_no_line(tmp_path: Path) -> None:
    """SIGTERM while the tap is blocked writing to a full pipe (a target behind): every
    line that comes out is whole JSON and the last is the STATE. (Before: a buffered
    stdout dropped the rest of the interrupted write, leaving a record cut and glued to
    the STATE, a line no target can read.)"""
    with Sandbox(seed=1, scale=0.3) as sandbox:
        config = write_json(tmp_path / "config.json", config_for(sandbox))
        tap = subprocess.Popen(
            [*TAP, "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=(tmp_path / "stderr").open("wb"),
        )
        time.sleep(3)  # the pipe (64 KB) is full long before: the tap waits in a write
        tap.send_signal(signal.SIGTERM)
        time.sleep(1)  # the target still behind
        stdout, _ = tap.communicate(timeout=60)
        assert tap.returncode == 128 + signal.SIGTERM
        lines = stdout.decode().splitlines()
        messages = [json.loads(line) for line in lines]  # every line whole
        assert messages[-1]["type"] == "STATE"
