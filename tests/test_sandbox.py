"""Tests for the Pipedrive sandbox: it must page, filter and fail like Pipedrive does,
otherwise the tap's tests against it prove nothing."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
import requests

from tap_pipedrive.sandbox import Faults, Sandbox
from tap_pipedrive.sandbox.data import TEMPLATES, Dataset
from tap_pipedrive.sandbox.server import parse_time

TOKEN = "sandbox-token"
HDR = {"x-api-token": TOKEN}


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    """Shared read-only sandbox; tests that mutate data or faults make their own."""
    with Sandbox(scale=0.05) as box:
        yield box


@pytest.fixture()
def fresh() -> Iterator[Sandbox]:
    with Sandbox(scale=0.05) as box:
        yield box


def walk_v2(url: str, path: str, **params: Any) -> tuple[list[dict[str, Any]], int]:
    rows: list[dict[str, Any]] = []
    pages, cursor = 0, None
    while True:
        q = dict(params)
        if cursor:
            q["cursor"] = cursor
        r = requests.get(url + path, params=q, headers=HDR, timeout=10)
        r.raise_for_status()
        body = r.json()
        pages += 1
        rows += body["data"]
        cursor = body["additional_data"]["next_cursor"]
        if cursor is None:
            return rows, pages


def test_401_without_or_with_wrong_token(sb: Sandbox) -> None:
    for headers in ({}, {"x-api-token": "nope"}):
        r = requests.get(sb.url + "/api/v2/deals", headers=headers, timeout=10)
        assert r.status_code == 401
        assert r.json() == {
            "success": False,
            "error": "unauthorized access",
            "errorCode": 401,
            "error_info": "Please check developers.pipedrive.com",
        }
        assert "x-ratelimit-limit" in r.headers


def test_unknown_path_and_method(sb: Sandbox) -> None:
    r = requests.get(sb.url + "/api/v2/nothing", headers=HDR, timeout=10)
    assert r.status_code == 404
    body = r.json()
    assert body["success"] is False and body["data"] is None and body["errorCode"] == 404
    assert requests.post(sb.url + "/api/v2/deals", headers=HDR, timeout=10).status_code == 405
    # v2 exists only under /api/v2; v1 under /v1 and /api/v1.
    assert requests.get(sb.url + "/v2/deals", headers=HDR, timeout=10).status_code == 404
    assert requests.get(sb.url + "/api/v1/users", headers=HDR, timeout=10).status_code == 200


def test_v2_cursor_walks_every_deal_once(sb: Sandbox) -> None:
    rows, pages = walk_v2(sb.url, "/api/v2/deals", limit=17)
    ids = [d["id"] for d in rows]
    assert pages > 3
    assert len(ids) == len(set(ids))
    assert set(ids) == sb.truth("deals", None)
    assert ids == sorted(ids)  # default sort_by=id asc
    assert not any(d["is_deleted"] or d["is_archived"] for d in rows)
    archived, _ = walk_v2(sb.url, "/api/v2/deals/archived", limit=500)
    assert {d["id"] for d in archived} == sb.truth("deals_archived", None)
    assert archived and all(d["is_archived"] for d in archived)
    deleted, _ = walk_v2(sb.url, "/api/v2/deals", status="deleted", limit=500)
    assert deleted and all(d["status"] == "deleted" and d["is_deleted"] for d in deleted)


def test_v2_limit_is_clamped_to_500(fresh: Sandbox) -> None:
    r = requests.get(
        fresh.url + "/api/v2/activities", params={"limit": 5000}, headers=HDR, timeout=10
    )
    assert r.status_code == 200
    assert len(r.json()["data"]) == len(fresh.truth("activities", None))  # 150 < 500
    big = Sandbox(scale=0.3)
    with big:
        r = requests.get(
            big.url + "/api/v2/activities", params={"limit": 5000}, headers=HDR, timeout=10
        )
        assert len(r.json()["data"]) == 500


def test_updated_since_and_sort_asc(sb: Sandbox) -> None:
    since = "2024-05-01T00:00:00Z"
    rows, _ = walk_v2(
        sb.url, "/api/v2/persons", updated_since=since, sort_by="update_time", limit=10
    )
    keys = [(parse_time(p["update_time"]), p["id"]) for p in rows]
    assert keys == sorted(keys)  # ties broken by id
    assert all(k[0] >= parse_time(since) for k in keys)
    assert {p["id"] for p in rows} == sb.truth("persons", since)
    assert sb.truth("persons", datetime(2024, 5, 1, tzinfo=timezone.utc)) == sb.truth(
        "persons", since
    )
    # updated_until is exclusive; desc walks the same set backwards.
    until = "2025-01-01T00:00:00Z"
    rows, _ = walk_v2(
        sb.url,
        "/api/v2/persons",
        updated_since=since,
        updated_until=until,
        sort_by="update_time",
        sort_direction="desc",
        limit=7,
    )
    keys = [(parse_time(p["update_time"]), p["id"]) for p in rows]
    assert keys == sorted(keys, reverse=True)
    assert all(parse_time(since) <= k[0] < parse_time(until) for k in keys)
    r = requests.get(
        sb.url + "/api/v2/persons", params={"sort_by": "name"}, headers=HDR, timeout=10
    )
    assert r.status_code == 400 and r.json()["success"] is False


def test_equal_update_times_straddle_page_boundaries(sb: Sandbox) -> None:
    r = requests.get(
        sb.url + "/api/v2/deals",
        params={"sort_by": "update_time", "limit": 50},
        headers=HDR,
        timeout=10,
    )
    page1 = r.json()
    cursor = page1["additional_data"]["next_cursor"]
    page2 = requests.get(
        sb.url + "/api/v2/deals",
        params={"sort_by": "update_time", "limit": 50, "cursor": cursor},
        headers=HDR,
        timeout=10,
    ).json()
    assert page1["data"][-1]["update_time"] == page2["data"][0]["update_time"]
    assert page1["data"][-1]["id"] < page2["data"][0]["id"]


def test_v1_offset_paging_and_data_null_past_end(sb: Sandbox) -> None:
    total = len(sb.truth("notes", None))
    start, seen = 0, []
    while True:
        r = requests.get(
            sb.url + "/v1/notes",
            params={"start": start, "limit": 20, "sort": "update_time ASC"},
            headers=HDR,
            timeout=10,
        )
        body = r.json()
        pag = body["additional_data"]["pagination"]
        seen += [n["id"] for n in body["data"]]
        assert pag["start"] == start and pag["limit"] == 20
        if not pag["more_items_in_collection"]:
            assert "next_start" not in pag
            break
        assert pag["next_start"] == start + 20
        start = pag["next_start"]
    assert len(seen) == total == len(set(seen))
    r = requests.get(sb.url + "/api/v1/notes", params={"start": total}, headers=HDR, timeout=10)
    body = r.json()
    assert body["success"] is True and body["data"] is None
    assert body["additional_data"]["pagination"]["more_items_in_collection"] is False
    note = requests.get(sb.url + "/v1/notes", params={"limit": 1}, headers=HDR, timeout=10).json()[
        "data"
    ][0]
    assert len(note["update_time"]) == 19 and "T" not in note["update_time"]  # v1 format
    since = "2025-06-01T00:00:00Z"
    r = requests.get(
        sb.url + "/v1/notes",
        params={"updated_since": since, "limit": 500, "sort": "update_time ASC"},
        headers=HDR,
        timeout=10,
    )
    assert {n["id"] for n in r.json()["data"]} == sb.truth("notes", since)


def test_leads_uuid_ids_and_archived(sb: Sandbox) -> None:
    body = requests.get(
        sb.url + "/v1/leads",
        params={"limit": 500, "sort": "update_time ASC"},
        headers=HDR,
        timeout=10,
    ).json()
    ids = {lead["id"] for lead in body["data"]}
    assert ids == sb.truth("leads", None)
    assert all(len(i) == 36 for i in ids)
    assert body["data"][0]["update_time"].endswith(".000Z")
    # The leads spec documents a flat additional_data: start/limit/more_items_in_collection.
    assert body["additional_data"]["more_items_in_collection"] is False
    archived = requests.get(sb.url + "/v1/leads/archived", headers=HDR, timeout=10).json()["data"]
    assert archived and {x["id"] for x in archived}.isdisjoint(ids)


def test_truth_after_touch_and_delete(fresh: Sandbox) -> None:
    before = {d["id"]: d for d in walk_v2(fresh.url, "/api/v2/deals", limit=500)[0]}
    latest = max(parse_time(d["update_time"]) for d in before.values())
    touched = fresh.touch("deals", n=3)
    assert len(touched) == 3
    since = datetime.fromtimestamp(latest + 1, tz=timezone.utc)
    assert fresh.truth("deals", since) == set(touched)
    rows, _ = walk_v2(
        fresh.url,
        "/api/v2/deals",
        updated_since=since.strftime("%Y-%m-%dT%H:%M:%SZ"),
        sort_by="update_time",
    )
    assert {d["id"] for d in rows} == set(touched)
    for d in rows:
        assert d["title"] != before[d["id"]]["title"]  # a field changed, not just the time
        assert parse_time(d["update_time"]) > latest
    assert fresh.touch("notes", ids=[1, 2]) == [1, 2]
    fresh.delete("deals", [touched[0]])
    assert touched[0] not in fresh.truth("deals", None)
    assert touched[0] in fresh.truth("deals_deleted", None)
    # Over HTTP too.
    r = requests.post(fresh.url + "/_sandbox/touch", json={"stream": "persons", "n": 2}, timeout=10)
    got = r.json()["ids"]
    after_seed = datetime.fromtimestamp(fresh.data.max_seeded + 1, tz=timezone.utc).isoformat()
    r = requests.get(
        fresh.url + "/_sandbox/truth", params={"stream": "persons", "since": after_seed}, timeout=10
    )
    assert r.json() == {"stream": "persons", "ids": sorted(got, key=str)}


def test_fault_429_with_headers(fresh: Sandbox) -> None:
    fresh.set_faults(rate_limit_every=2)
    codes = [requests.get(fresh.url + "/api/v2/stages", headers=HDR, timeout=10) for _ in range(4)]
    assert [r.status_code for r in codes] == [200, 429, 200, 429]
    r = codes[1]
    assert r.headers["Retry-After"] == "1"
    assert r.headers["x-ratelimit-remaining"] == "0"
    assert {"x-ratelimit-limit", "x-ratelimit-reset"} <= set(r.headers)
    assert r.json()["errorCode"] == 429


def test_fault_server_errors_cycle(fresh: Sandbox) -> None:
    fresh.set_faults(server_error_every=1)
    codes = [
        requests.get(fresh.url + "/v1/users", headers=HDR, timeout=10).status_code for _ in range(6)
    ]
    assert codes == [500, 502, 503, 520, 524, 500]


def test_fault_burst_limit(fresh: Sandbox) -> None:
    fresh.set_faults(burst_limit=3)
    with requests.Session() as s:
        codes = [
            s.get(fresh.url + "/api/v2/pipelines", headers=HDR, timeout=10).status_code
            for _ in range(5)
        ]
    assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]


def test_fault_truncate_once(fresh: Sandbox) -> None:
    fresh.set_faults(truncate_once=True)
    host, port = fresh.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", "/api/v2/deals?limit=5", headers=HDR)
    resp = conn.getresponse()
    assert resp.status == 200
    with pytest.raises(http.client.IncompleteRead):
        resp.read()
    conn.close()
    r = requests.get(fresh.url + "/api/v2/deals", params={"limit": 5}, headers=HDR, timeout=10)
    assert len(r.json()["data"]) == 5  # only once


def test_faults_over_http_and_latency(fresh: Sandbox) -> None:
    r = requests.post(fresh.url + "/_sandbox/faults", json={"latency_ms": 150}, timeout=10)
    assert r.json()["latency_ms"] == 150
    t0 = time.monotonic()
    requests.get(fresh.url + "/v1/currencies", headers=HDR, timeout=10)
    assert time.monotonic() - t0 >= 0.15
    assert isinstance(fresh.faults, Faults) and fresh.faults.latency_ms == 150


def api(sb: Sandbox, path: str = "/api/v2/stages", **kw: Any) -> requests.Response:
    kw.setdefault("headers", HDR)
    kw.setdefault("timeout", 10)
    return requests.get(sb.url + path, **kw)


def admin(sb: Sandbox) -> None:
    """Admin calls in between API calls: they must neither be faulted nor counted."""
    assert requests.get(sb.url + "/_sandbox/requests", timeout=5).status_code == 200
    assert requests.get(sb.url + "/_sandbox/faults", timeout=5).status_code == 200


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("all", {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "retry-after"}),
        ("ratelimit", {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"}),
        ("retry-after", {"retry-after"}),
        ("none", set()),
    ],
)
def test_fault_rate_limit_headers(mode: str, expected: set[str]) -> None:
    fresh = Sandbox(scale=0.01, faults=Faults(rate_limit_every=1, rate_limit_headers=mode))
    with fresh:
        r = api(fresh)
    assert r.status_code == 429 and r.json()["errorCode"] == 429
    got = {k.lower() for k in r.headers if k.lower().startswith(("x-ratelimit", "retry-after"))}
    assert got == expected
    if "retry-after" in expected:
        assert r.headers["Retry-After"] == "1"
    if "x-ratelimit-reset" in expected:
        assert r.headers["x-ratelimit-remaining"] == "0"
        assert r.headers["x-ratelimit-reset"] == ("2" if mode == "all" else "1")


def test_fault_settings_are_checked_and_coerced(fresh: Sandbox) -> None:
    with pytest.raises(ValueError, match="rate_limit_headers"):
        fresh.set_faults(rate_limit_headers="sometimes")
    with pytest.raises(ValueError):
        Faults(drop_every=-1)
    with pytest.raises(TypeError):
        fresh.set_faults(drop_evry=2)
    r = requests.post(fresh.url + "/_sandbox/faults", json={"rate_limit_headers": "x"}, timeout=5)
    assert r.status_code == 400
    r = requests.post(
        fresh.url + "/_sandbox/faults", json={"drop_every": "3", "stall_seconds": 1}, timeout=5
    )
    assert r.status_code == 200
    assert r.json()["drop_every"] == 3 and fresh.faults.stall_seconds == 1.0
    assert fresh.faults.rate_limit_headers == "all"  # the rejected calls changed nothing


def test_fault_budget_exhausted(fresh: Sandbox) -> None:
    assert api(fresh).status_code == 200  # before the fault is set: not counted
    fresh.set_faults(budget_exhausted_after=2)
    assert api(fresh).status_code == 200
    admin(fresh)
    assert api(fresh).status_code == 200
    for path in ("/api/v2/stages", "/v1/users", "/api/v2/deals"):
        r = api(fresh, path)
        assert r.status_code == 429
        assert r.headers["Content-Type"].startswith("application/json")
        assert r.json() == {
            "success": False,
            "error": "Request over limit",
            "errorCode": 429,
            "error_info": "Please check developers.pipedrive.com",
            "data": None,
            "additional_data": None,
        }
        assert r.headers["x-ratelimit-remaining"] == "0"
        assert r.headers["x-ratelimit-reset"] == "36000"
        assert r.headers["Retry-After"] == "36000"
        assert int(r.headers["x-ratelimit-limit"]) > 0
    admin(fresh)  # the admin API still answers
    assert api(fresh, headers={"x-api-token": "nope"}).status_code == 401  # token first
    r = requests.post(fresh.url + "/_sandbox/faults", json={"budget_exhausted_after": 1}, timeout=5)
    assert r.status_code == 200  # set_faults restarts the count
    assert [api(fresh).status_code for _ in range(2)] == [200, 429]


def test_fault_block_after_is_an_html_403(fresh: Sandbox) -> None:
    fresh.set_faults(block_after=2)
    assert api(fresh, headers={"x-api-token": "nope"}).status_code == 401  # counts too
    admin(fresh)
    assert api(fresh).status_code == 200
    for headers in (HDR, {"x-api-token": "nope"}):
        r = api(fresh, "/v1/users", headers=headers)
        assert r.status_code == 403
        assert r.headers["Content-Type"].startswith("text/html")
        assert int(r.headers["Content-Length"]) == len(r.content)
        assert "you have been blocked" in r.text and "Access denied" in r.text
        with pytest.raises(ValueError):
            r.json()
    admin(fresh)
    r = requests.get(fresh.url + "/_sandbox/truth", params={"stream": "stages"}, timeout=5)
    assert r.status_code == 200 and r.json()["ids"]
    fresh.set_faults(block_after=0)
    assert api(fresh).status_code == 200


def test_fault_refused_paths_answer_that_exact_path_with_the_json_envelope(
    fresh: Sandbox,
) -> None:
    fresh.set_faults(refused_paths="/api/v2/projects=403, /v1/goals/find=404")
    r = api(fresh, "/api/v2/projects")
    assert r.status_code == 403 and r.json()["success"] is False
    assert r.json()["errorCode"] == 403 and r.headers["x-ratelimit-limit"]
    assert api(fresh, "/v1/goals/find").status_code == 404
    assert api(fresh, "/api/v2/projects/archived").status_code == 200  # exact paths only
    assert api(fresh, "/api/v2/projects", headers={}).status_code == 401  # token first
    with pytest.raises(ValueError, match="refused_paths"):
        fresh.set_faults(refused_paths="/api/v2/projects=500")
    fresh.set_faults(refused_paths="")
    assert api(fresh, "/api/v2/projects").status_code == 200


def test_fault_drop_every_closes_without_response(fresh: Sandbox) -> None:
    fresh.set_faults(drop_every=2)
    assert api(fresh).status_code == 200
    admin(fresh)  # not counted: the next API request is the 2nd
    with pytest.raises(requests.ConnectionError):
        api(fresh)
    assert api(fresh).status_code == 200
    host, port = fresh.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    conn.request("GET", "/api/v2/stages", headers=HDR)
    with pytest.raises(http.client.RemoteDisconnected):
        conn.getresponse()
    conn.close()
    with requests.Session() as s:  # a kept-alive connection survives the others
        codes = []
        for _ in range(4):
            try:
                codes.append(s.get(fresh.url + "/v1/users", headers=HDR, timeout=5).status_code)
            except requests.ConnectionError:
                codes.append(0)
    assert codes == [200, 0, 200, 0]
    assert fresh.request_count() == 8  # dropped requests are still recorded


def test_fault_stall_every(fresh: Sandbox) -> None:
    fresh.set_faults(stall_every=2, stall_seconds=0.3)
    t0 = time.monotonic()
    assert api(fresh).status_code == 200
    assert time.monotonic() - t0 < 0.25
    admin(fresh)
    with pytest.raises(requests.ReadTimeout):
        api(fresh, timeout=0.1)
    assert api(fresh).status_code == 200
    t0 = time.monotonic()
    r = api(fresh, timeout=5)  # a patient client gets the normal answer
    assert r.status_code == 200 and r.json()["success"] is True
    assert time.monotonic() - t0 >= 0.3
    fresh.set_faults(stall_every=1, drop_every=1, stall_seconds=0.1)  # stall, then hang up
    t0 = time.monotonic()
    with pytest.raises(requests.ConnectionError):
        api(fresh, timeout=5)
    assert time.monotonic() - t0 >= 0.1


def test_fault_non_json_once(fresh: Sandbox) -> None:
    fresh.set_faults(non_json_once=True)
    empty = api(fresh, "/api/v2/deals", params={"updated_since": "2100-01-01T00:00:00Z"})
    assert empty.json()["data"] == []  # a response without data does not use it up
    r = api(fresh, "/api/v2/deals", params={"limit": 5})
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/html")
    assert int(r.headers["Content-Length"]) == len(r.content)  # complete, not cut
    assert "502 Bad Gateway" in r.text
    with pytest.raises(ValueError):
        r.json()
    assert len(api(fresh, "/api/v2/deals", params={"limit": 5}).json()["data"]) == 5  # once
    requests.post(fresh.url + "/_sandbox/faults", json={"non_json_once": True}, timeout=5)
    assert api(fresh, "/v1/users").headers["Content-Type"].startswith("text/html")  # re-armed
    assert api(fresh, "/v1/users").json()["success"] is True
    fresh.set_faults(non_json_once=True, truncate_once=True)  # both: one response each
    assert api(fresh).headers["Content-Type"].startswith("text/html")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        api(fresh)
    assert api(fresh).json()["success"] is True


def test_faults_never_touch_sandbox_routes(fresh: Sandbox) -> None:
    fresh.set_faults(
        drop_every=1,
        stall_every=1,
        stall_seconds=3,
        block_after=1,
        budget_exhausted_after=1,
        rate_limit_every=1,
        server_error_every=1,
        non_json_once=True,
        truncate_once=True,
    )
    t0 = time.monotonic()
    for _ in range(3):
        admin(fresh)
        r = requests.get(fresh.url + "/_sandbox/truth", params={"stream": "deals"}, timeout=2)
        assert r.status_code == 200 and r.json()["ids"]
    assert time.monotonic() - t0 < 1
    assert fresh.request_count() == 0


def test_cli_fault_flags() -> None:
    from tap_pipedrive.sandbox.__main__ import build_parser, faults_from_args

    p = build_parser()
    assert faults_from_args(p.parse_args([])) == Faults()
    a = p.parse_args(
        [
            "--rate-limit-every=3",
            "--rate-limit-headers=retry-after",
            "--budget-exhausted-after=10",
            "--block-after=20",
            "--drop-every=4",
            "--stall-every=5",
            "--stall-seconds=0.5",
            "--non-json-once",
            "--truncate-once",
        ]
    )
    assert faults_from_args(a) == Faults(
        rate_limit_every=3,
        rate_limit_headers="retry-after",
        budget_exhausted_after=10,
        block_after=20,
        drop_every=4,
        stall_every=5,
        stall_seconds=0.5,
        non_json_once=True,
        truncate_once=True,
    )
    with pytest.raises(SystemExit):
        p.parse_args(["--rate-limit-headers=some"])
    assert "--budget-exhausted-after" in p.format_help()


def test_requests_are_recorded_with_query(fresh: Sandbox) -> None:
    requests.get(
        fresh.url + "/api/v2/deals",
        params={"limit": 3, "sort_by": "update_time"},
        headers=HDR,
        timeout=10,
    )
    requests.get(
        fresh.url + "/v1/users", params={"api_token": TOKEN}, timeout=10
    )  # accepted, but recorded
    method, path, query, headers = fresh.requests[0]
    assert (method, path, query) == (
        "GET",
        "/api/v2/deals",
        {"limit": "3", "sort_by": "update_time"},
    )
    assert headers.get("x-api-token") == TOKEN
    assert fresh.requests[1][2] == {"api_token": TOKEN}
    assert fresh.request_count() == 2 and fresh.request_count("/v1/") == 1
    body = requests.get(fresh.url + "/_sandbox/requests", timeout=10).json()
    assert body == {"count": 2, "by_path": {"/api/v2/deals": 1, "/v1/users": 1}}
    fresh.reset_requests()
    assert fresh.request_count() == 0


def test_custom_fields_v1_vs_v2_and_field_endpoints(sb: Sandbox) -> None:
    fields = requests.get(
        sb.url + "/v1/dealFields", params={"limit": 500}, headers=HDR, timeout=10
    ).json()["data"]
    custom = {f["key"]: f for f in fields if f["edit_flag"]}
    assert custom and all(len(k) == 40 for k in custom)
    assert not any(f["edit_flag"] for f in fields if f["key"] in ("title", "value", "update_time"))
    by_type = {f["field_type"]: f["key"] for f in custom.values()}
    deals = walk_v2(sb.url, "/api/v2/deals", limit=500)[0]
    mon = by_type["monetary"]
    d = next(x for x in deals if x["custom_fields"][mon] is not None)
    assert set(d["custom_fields"][mon]) == {"value", "currency"}
    assert set(d["custom_fields"]) == set(custom)
    leads = requests.get(
        sb.url + "/v1/leads", params={"limit": 500}, headers=HDR, timeout=10
    ).json()["data"]
    lead = next(x for x in leads if x[mon] is not None and x[by_type["set"]] is not None)
    assert isinstance(lead[mon + "_currency"], str)
    assert isinstance(lead[by_type["set"]], str)  # v1 set: "id,id"
    assert by_type["address"] + "_formatted_address" in lead
    v2 = requests.get(
        sb.url + "/api/v2/dealFields", params={"limit": 500}, headers=HDR, timeout=10
    ).json()
    assert {f["field_code"] for f in v2["data"] if f["is_custom_field"]} == set(custom)


def test_deterministic_from_seed() -> None:
    a, b, c = Dataset(7, 0.05), Dataset(7, 0.05), Dataset(8, 0.05)
    assert a.render("deals", 3) == b.render("deals", 3)
    assert list(a.tables["deals"].upd) == list(b.tables["deals"].upd)
    assert list(a.tables["deals"].upd) != list(c.tables["deals"].upd)
    t = a.tables["notes"]
    assert all(t.add[i] <= t.upd[i] for i in range(len(t)))
    for stream in ("files", "callLogs", "mailThreads", "projects", "tasks", "leadLabels"):
        assert a.render(stream, 1, "v1") == b.render(stream, 1, "v1"), stream
    assert a.deal_flow(5) == b.deal_flow(5) and a.deal_products(5) == b.deal_products(5)
    assert a.goals == b.goals and a.goals != c.goals


def test_a_bulk_edit_moves_that_many_deals_into_one_burst_and_nothing_else() -> None:
    plain, edited = Dataset(7, 0.05), Dataset(7, 0.05, bulk_edit=60)
    before, after = plain.tables["deals"], edited.tables["deals"]
    moved = [i for i in range(len(before)) if before.upd[i] != after.upd[i]]
    assert 55 <= len(moved) <= 60  # a few may already have had that update time
    times = sorted(after.upd[i] for i in moved)
    assert times[-1] - times[0] < 15  # four a second: 60 records in 15 s
    assert all(after.add[i] <= after.upd[i] for i in range(len(after)))
    assert edited.counts == plain.counts
    assert list(edited.tables["persons"].upd) == list(plain.tables["persons"].upd)


def test_cli_prints_url_and_exits_cleanly() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tap_pipedrive.sandbox",
            "--port",
            "0",
            "--scale",
            "0.05",
            "--token",
            "tkn",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("SANDBOX_URL=http://127.0.0.1:")
        url = line.split("=", 1)[1]
        r = requests.get(url + "/api/v2/pipelines", headers={"x-api-token": "tkn"}, timeout=10)
        assert r.status_code == 200 and len(r.json()["data"]) == 3
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    assert json.loads(r.text)["success"] is True


# --------------------------------------------------------------------------- second batch


def get(url: str, path: str, **params: Any) -> requests.Response:
    return requests.get(url + path, params=params, headers=HDR, timeout=10)


def walk_v1(url: str, path: str, limit: int = 500, **params: Any) -> list[dict[str, Any]]:
    """Offset paging until the collection ends (short or empty page if no pagination)."""
    rows: list[dict[str, Any]] = []
    start = 0
    while True:
        body = get(url, path, start=start, limit=limit, **params).json()
        page = body["data"] or []
        rows += page
        pag = (body.get("additional_data") or {}).get("pagination")
        if pag is not None:
            if not pag["more_items_in_collection"]:
                return rows
            start += pag["limit"]
        elif len(page) < limit:
            return rows
        else:
            start += limit


@pytest.fixture(scope="module")
def mid() -> Iterator[Sandbox]:
    """Big enough for the page caps: 400 files, about 70 call logs of the token user."""
    with Sandbox(scale=0.5) as box:
        yield box


def test_files_are_capped_at_100_a_page_and_sort_by_update_time(mid: Sandbox) -> None:
    body = get(mid.url, "/v1/files", limit=500, sort="update_time ASC").json()
    assert len(body["data"]) == 100
    assert body["additional_data"]["pagination"] == {
        "start": 0,
        "limit": 100,
        "more_items_in_collection": True,
        "next_start": 100,
    }
    rows = walk_v1(mid.url, "/v1/files", sort="update_time ASC")
    keys = [(parse_time(f["update_time"]), f["id"]) for f in rows]
    assert keys == sorted(keys)
    assert {f["id"] for f in rows} == mid.truth("files", None)
    assert all(f["active_flag"] for f in rows)  # deleted files are not listed
    linked = [f for f in rows if f["deal_id"]]
    assert linked and all(f["deal_name"] for f in linked)
    since = "2024-01-01T00:00:00Z"
    assert mid.truth("files", since) == {
        f["id"] for f in rows if parse_time(f["update_time"]) >= parse_time(since)
    }
    # The legacy include_deleted_files=1 (not in the current spec) shows them flagged.
    deleted = mid.deleted("files")
    assert deleted
    every = walk_v1(mid.url, "/v1/files", include_deleted_files=1)
    assert {f["id"] for f in every if not f["active_flag"]} == deleted


def test_call_logs_are_the_token_users_and_capped_at_50(mid: Sandbox) -> None:
    body = get(mid.url, "/v1/callLogs", limit=500).json()
    assert len(body["data"]) == 50
    assert body["additional_data"]["pagination"]["limit"] == 50
    rows = walk_v1(mid.url, "/v1/callLogs")
    me = mid.data.token_user
    assert {c["id"] for c in rows} == mid.truth("call_logs") and len(rows) > 50
    assert all(c["user_id"] == me and c["id"].startswith("CA") for c in rows)
    assert all(not (c["deal_id"] and c["lead_id"]) for c in rows)


def test_deal_products_need_at_most_100_deal_ids(sb: Sandbox) -> None:
    for params in ({}, {"deal_ids": ",".join(str(i) for i in range(1, 102))}):
        r = get(sb.url, "/api/v2/deals/products", **params)
        assert r.status_code == 400 and r.json()["success"] is False
    deals = sorted(sb.truth("deals", None))
    rows, pages = walk_v2(
        sb.url,
        "/api/v2/deals/products",
        deal_ids=",".join(map(str, deals[:100])),
        sort_by="update_time",
        limit=7,
    )
    assert pages > 1
    keys = [(parse_time(p["update_time"]), p["id"]) for p in rows]
    assert keys == sorted(keys)
    assert {p["deal_id"] for p in rows} <= set(deals[:100])
    # Repeated keys work like the comma list.
    r = requests.get(
        sb.url + "/api/v2/deals/products?deal_ids=1&deal_ids=2&limit=500", headers=HDR, timeout=10
    )
    one, _ = walk_v2(sb.url, "/api/v2/deals/1/products")
    two, _ = walk_v2(sb.url, "/api/v2/deals/2/products")
    assert [p["id"] for p in r.json()["data"]] == sorted(p["id"] for p in one + two)
    # About 1.5 products a deal, some deals none; products_count agrees.
    counts = [sb.data.dp_off[i + 1] - sb.data.dp_off[i] for i in range(len(deals))]
    assert 0 in counts and 1.1 < sum(counts) / len(counts) < 1.9
    deal = get(sb.url, "/api/v2/deals", ids="1,2", include_fields="products_count").json()["data"]
    assert {d["id"]: d["products_count"] for d in deal} == {1: len(one), 2: len(two)}


def test_include_fields_only_when_asked(sb: Sandbox) -> None:
    deal_extra = include_enum("v2:deals")
    plain = get(sb.url, "/api/v2/deals", limit=5).json()["data"]
    assert not any(k in d for d in plain for k in deal_extra if k != "source_lead_id")
    full = get(sb.url, "/api/v2/deals", limit=50, include_fields=",".join(deal_extra)).json()
    for d in full["data"]:
        assert set(deal_extra) <= set(d)
        for k in deal_extra:
            v = d[k]
            if k.endswith("_count"):
                assert isinstance(v, int), k
            elif k.endswith("_time"):
                assert v is None or (v[10] == "T" and v.endswith("Z")), (k, v)
        assert isinstance(d["smart_bcc_email"], str)
    assert any(d["notes_count"] for d in full["data"])
    person_extra = include_enum("v2:persons")
    persons = get(sb.url, "/api/v2/persons", include_fields=",".join(person_extra)).json()["data"]
    assert all(isinstance(p["marketing_status"], str) for p in persons)
    assert all(isinstance(p["doi_status"], str) for p in persons)
    assert "marketing_status" not in get(sb.url, "/api/v2/persons", limit=1).json()["data"][0]
    orgs = get(sb.url, "/api/v2/organizations", include_fields="people_count").json()["data"]
    assert all(isinstance(o["people_count"], int) and "notes_count" not in o for o in orgs)
    acts = get(sb.url, "/api/v2/activities", include_fields="attendees").json()["data"]
    assert all(isinstance(a["attendees"], list) and a["attendees"] for a in acts)
    assert "attendees" not in get(sb.url, "/api/v2/activities", limit=1).json()["data"][0]
    archived = get(sb.url, "/api/v2/deals/archived", include_fields="files_count").json()["data"]
    assert archived and all(isinstance(d["files_count"], int) for d in archived)
    r = get(sb.url, "/api/v2/activities", include_fields="notes_count")
    assert r.status_code == 400


def include_enum(name: str) -> list[str]:
    """The spec's `include_fields` values of a v2 list (kept in templates.json)."""
    return TEMPLATES[name]["param_enums"]["include_fields"]


def test_goals_of_every_user_need_assignee_type_and_is_active(sb: Sandbox) -> None:
    def find(**params: Any) -> list[dict[str, Any]]:
        body = get(sb.url, "/v1/goals/find", **params).json()
        assert body["success"] is True and "pagination" not in (body.get("additional_data") or {})
        return body["data"]["goals"]

    me = sb.data.token_user
    mine = find()
    assert mine and all(g["assignee"] == {"id": me, "type": "person"} for g in mine)
    assert all(g["is_active"] for g in mine)  # is_active defaults to true
    every = set()
    for kind in ("person", "company", "team"):
        for active in ("true", "false"):
            every |= {g["id"] for g in find(**{"assignee.type": kind, "is_active": active})}
    assert every == sb.truth("goals") and len(every) > len(mine)
    by_type = set()
    for name in ("deals_won", "deals_progressed", "activities_completed", "activities_added",
                 "deals_started"):  # fmt: skip
        for active in ("true", "false"):
            by_type |= {g["id"] for g in find(**{"type.name": name, "is_active": active})}
    assert by_type == every
    other = sb.data.active_users[3]
    assert all(g["assignee"]["id"] == other for g in find(**{"assignee.id": other}))
    r = get(sb.url, "/v1/goals/find", **{"period.start": "2024-01-01"})
    assert r.status_code == 400
    r = get(sb.url, "/v1/goals/find", **{"type.name": "nope"})
    assert r.status_code == 400


def test_recents_returns_at_most_one_month(fresh: Sandbox) -> None:
    now = fresh.engine._now()
    persons = fresh.data.tables["persons"]
    persons.upd[0] = now - 40 * 86400  # older than a month: never returned
    persons.upd[1] = now - 20 * 86400
    fresh.engine.version += 1
    touched = fresh.touch("deals", n=2)
    gone = sorted(fresh.truth("notes", None))[0]
    fresh.delete("notes", [gone])
    r = get(fresh.url, "/v1/recents", since_timestamp="2019-01-01 00:00:00")
    body = r.json()
    got = {(e["item"], e["id"]) for e in body["data"]}
    assert ("person", persons.ids[1]) in got and ("person", persons.ids[0]) not in got
    assert {("deal", d) for d in touched} | {("note", gone)} <= got
    assert got == fresh.truth("recents", "2019-01-01T00:00:00Z")
    floor = now - 30 * 86400
    for e in body["data"]:
        stamp = e["data"].get("update_time") or e["data"].get("modified")
        assert parse_time(stamp) >= floor
    note = next(e["data"] for e in body["data"] if e["item"] == "note")
    assert note["active_flag"] is False  # deleted records show up, flagged
    deal = next(e["data"] for e in body["data"] if e["item"] == "deal")
    assert deal["deleted"] is False and len(deal["update_time"]) == 19
    assert body["additional_data"]["since_timestamp"] == "2019-01-01 00:00:00"
    only = get(fresh.url, "/v1/recents", since_timestamp="2019-01-01 00:00:00", items="deal")
    assert {e["item"] for e in only.json()["data"]} == {"deal"}
    for bad in ({}, {"since_timestamp": "2024-01-01T00:00:00Z"}, {"since_timestamp": "x"}):
        assert get(fresh.url, "/v1/recents", **bad).status_code == 400
    page = get(fresh.url, "/v1/recents", since_timestamp="2019-01-01 00:00:00", limit=1).json()
    assert page["additional_data"]["pagination"]["more_items_in_collection"] is True


def test_deleted_records_per_entity(sb: Sandbox) -> None:
    for stream, path in (
        ("persons", "/api/v2/persons"),
        ("organizations", "/api/v2/organizations"),
        ("products", "/api/v2/products"),
        ("activities", "/api/v2/activities"),
    ):
        deleted = sb.deleted(stream)
        assert deleted, stream
        listed = {x["id"] for x in walk_v2(sb.url, path, limit=500)[0]}
        assert listed == sb.truth(stream) and not listed & deleted, stream
    notes = {n["id"] for n in walk_v1(sb.url, "/v1/notes")}
    assert sb.deleted("notes") and not notes & sb.deleted("notes")
    deals, _ = walk_v2(sb.url, "/api/v2/deals", status="deleted", limit=500)
    # (Deleted archived deals would be listed by /deals/archived?status=deleted instead.)
    archived = {d["id"] for d in walk_v2(sb.url, "/api/v2/deals/archived", status="deleted")[0]}
    assert {d["id"] for d in deals} == sb.deleted("deals") - archived == sb.truth("deals_deleted")
    every, _ = walk_v2(sb.url, "/api/v2/deals", status="open,won,lost,deleted", limit=500)
    assert {d["id"] for d in every} == sb.truth("deals", with_deleted=True)
    every, _ = walk_v2(sb.url, "/api/v2/deals/archived", status="open,won,lost,deleted")
    assert {d["id"] for d in every} == sb.truth("archived_deals", with_deleted=True)
    r = requests.get(sb.url + "/_sandbox/deleted", params={"stream": "files"}, timeout=10)
    assert r.json()["ids"] == sorted(sb.deleted("files"), key=str)


def test_small_v1_tables_and_their_truth(sb: Sandbox) -> None:
    labels = get(sb.url, "/v1/leadLabels").json()
    assert "additional_data" not in labels
    assert {x["id"] for x in labels["data"]} == sb.truth("lead_labels")
    lead_labels = {i for x in walk_v1(sb.url, "/v1/leads") for i in x["label_ids"]}
    assert lead_labels and lead_labels <= sb.truth("lead_labels")
    roles = get(sb.url, "/v1/roles", limit=3).json()
    # The spec documents no next_start for roles: a client pages with start + limit.
    assert roles["additional_data"]["pagination"] == {
        "start": 0,
        "limit": 3,
        "more_items_in_collection": True,
    }
    assert {x["id"] for x in walk_v1(sb.url, "/v1/roles", limit=3)} == sb.truth("roles")
    users = get(sb.url, "/v1/users").json()["data"]
    assert {u["role_id"] for u in users} <= sb.truth("roles")
    sets = get(sb.url, "/v1/permissionSets").json()["data"]
    assert {x["id"] for x in sets} == sb.truth("permission_sets")
    assert all(
        x["app"] == "sales" for x in get(sb.url, "/v1/permissionSets", app="sales").json()["data"]
    )


def test_projects_and_tasks(sb: Sandbox) -> None:
    projects, _ = walk_v2(sb.url, "/api/v2/projects", limit=5)
    assert {p["id"] for p in projects} == sb.truth("projects")
    assert all(p["status"] != "deleted" and p["archive_time"] is None for p in projects)
    archived, _ = walk_v2(sb.url, "/api/v2/projects/archived")
    assert archived and all(p["archive_time"] for p in archived)
    deleted, _ = walk_v2(sb.url, "/api/v2/projects", status="deleted")
    assert deleted and all(p["status"] == "deleted" for p in deleted)
    tasks, _ = walk_v2(sb.url, "/api/v2/tasks", limit=7)
    assert {x["id"] for x in tasks} == sb.truth("tasks")
    roots, _ = walk_v2(sb.url, "/api/v2/tasks", parent_task_id="null")
    assert roots and all(x["parent_task_id"] is None for x in roots) and len(roots) < len(tasks)


def test_project_boards_phases_and_templates(sb: Sandbox) -> None:
    """Boards and phases answer whole (`additional_data` null, as the spec shows), phases
    only for the `board_id` the spec requires; every board and phase a project names is
    listed; templates page by cursor."""
    boards = get(sb.url, "/api/v2/boards").json()
    assert boards["additional_data"] is None
    assert {b["id"] for b in boards["data"]} == sb.truth("project_boards")
    assert get(sb.url, "/api/v2/phases").status_code == 400
    phases = []
    for board in boards["data"]:
        answer = get(sb.url, "/api/v2/phases", board_id=board["id"]).json()
        assert answer["additional_data"] is None
        assert answer["data"] and {p["board_id"] for p in answer["data"]} == {board["id"]}
        phases += answer["data"]
    assert {p["id"] for p in phases} == sb.truth("project_phases")
    projects, _ = walk_v2(sb.url, "/api/v2/projects")
    by_id = {p["id"]: p for p in phases}
    assert all(by_id[p["phase_id"]]["board_id"] == p["board_id"] for p in projects)
    templates, pages = walk_v2(sb.url, "/api/v2/projectTemplates", limit=2)
    assert pages == 2 and {x["id"] for x in templates} == sb.truth("project_templates")
    assert {x["projects_board_id"] for x in templates} <= {b["id"] for b in boards["data"]}


def test_mailbox_threads_by_folder_and_their_messages(sb: Sandbox) -> None:
    assert get(sb.url, "/v1/mailbox/mailThreads").status_code == 400
    assert get(sb.url, "/v1/mailbox/mailThreads", folder="spam").status_code == 400
    seen: dict[int, dict[str, Any]] = {}
    for folder in ("inbox", "drafts", "sent", "archive"):
        rows = walk_v1(sb.url, "/v1/mailbox/mailThreads", limit=4, folder=folder)
        assert rows, folder
        stamps = [t["last_message_timestamp"] for t in rows]
        assert stamps == sorted(stamps, reverse=True)  # newest first
        assert all(folder in t["folders"] for t in rows)
        seen.update({t["id"]: t for t in rows})
    assert set(seen) == sb.truth("mail_threads")
    body = get(sb.url, "/v1/mailbox/mailThreads", folder="inbox").json()
    assert "additional_data" not in body  # the spec documents none here
    messages = set()
    for tid, thread in seen.items():
        msgs = get(sb.url, f"/v1/mailbox/mailThreads/{tid}/mailMessages").json()["data"]
        assert len(msgs) == thread["message_count"]
        assert all(m["mail_thread_id"] == tid for m in msgs)
        messages |= {m["id"] for m in msgs}
    assert messages == sb.truth("mail_messages")
    assert get(sb.url, "/v1/mailbox/mailThreads/99999/mailMessages").status_code == 404


def test_deal_children_truth(sb: Sandbox) -> None:
    since = "2025-01-01T00:00:00Z"
    deals = sorted(sb.truth("deals", since) | sb.truth("archived_deals", since))
    assert deals
    parts, flow, products = set(), set(), set()
    for d in deals:
        rows = walk_v1(sb.url, f"/v1/deals/{d}/participants", limit=2)
        assert all(p["related_item_id"] == d for p in rows)
        parts |= {p["id"] for p in rows}
        entries = walk_v1(sb.url, f"/v1/deals/{d}/flow", all_changes=1)
        stamps = [e["timestamp"] for e in entries]
        assert stamps == sorted(stamps, reverse=True)
        flow |= {(d, e["object"], e["data"]["id"]) for e in entries}
    for k in range(0, len(deals), 100):
        chunk = ",".join(map(str, deals[k : k + 100]))
        products |= {p["id"] for p in walk_v2(sb.url, "/api/v2/deals/products", deal_ids=chunk)[0]}
    assert parts == sb.truth("deal_participants", since)
    assert flow == sb.truth("deal_flow", since)
    assert products == sb.truth("deal_products", since)
    assert {o for _, o, _ in flow} >= {"dealChange", "note", "activity"}
    # Custom-field changes only with all_changes=1; `items` filters by kind.
    d = deals[0]
    every = walk_v1(sb.url, f"/v1/deals/{d}/flow", all_changes=1)
    some = walk_v1(sb.url, f"/v1/deals/{d}/flow")
    assert all(len(e["data"].get("field_key") or "") != 40 for e in some)
    assert len(some) <= len(every)
    notes = walk_v1(sb.url, f"/v1/deals/{d}/flow", items="note")
    assert all(e["object"] == "note" for e in notes)
    assert get(sb.url, "/v1/deals/0/flow").status_code == 404
    body = get(sb.url, f"/v1/deals/{d}/participants").json()
    assert "next_start" not in body["additional_data"]["pagination"]
    assert body["related_objects"]["person"]


def test_touch_reaches_deal_children_and_new_tables(fresh: Sandbox) -> None:
    seeded = datetime.fromtimestamp(fresh.data.max_seeded + 1, tz=timezone.utc)
    touched = fresh.touch("deals", n=2)
    flow = fresh.truth("deal_flow", seeded)
    assert {d for d, _, _ in flow} == set(touched)
    assert any(o == "dealChange" and i >= 1_000_000_000 for _, o, i in flow)
    for d in touched:
        newest = get(fresh.url, f"/v1/deals/{d}/flow", limit=1).json()["data"][0]
        assert newest["data"]["field_key"] == "title" and "(rev 1)" in newest["data"]["new_value"]
    for stream in ("files", "mail_threads", "projects", "tasks"):
        ids = fresh.touch(stream, n=1)
        assert fresh.truth(stream, seeded, incremental=True) == set(ids), stream
    assert fresh.truth("files", seeded) == fresh.truth("files", seeded, incremental=True)
    assert fresh.truth("tasks", seeded) == fresh.truth("tasks")  # read whole by default
    msgs = fresh.truth("mail_messages", seeded, incremental=True)
    assert msgs and len(msgs) < len(fresh.truth("mail_messages", seeded))


def test_every_custom_field_type_on_deals(sb: Sandbox) -> None:
    # The 16 types POST /api/v2/dealFields accepts: every type a custom field can have.
    creatable = {
        "varchar", "text", "double", "phone", "date", "daterange", "time", "timerange",
        "set", "enum", "varchar_auto", "address", "monetary", "org", "people", "user",
    }  # fmt: skip
    for path, want in (
        ("/v1/dealFields", creatable),
        ("/v1/personFields", 12),
        ("/v1/organizationFields", 12),
        ("/v1/productFields", 8),
        ("/v1/activityFields", 5),
    ):
        rows = walk_v1(sb.url, path)
        types = {f["field_type"] for f in rows if f["edit_flag"]}
        assert types == want if isinstance(want, set) else len(types) >= want, (path, types)
