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
from tap_pipedrive.sandbox.data import Dataset
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
