"""HTTP server that imitates the Pipedrive v1/v2 list endpoints the tap reads.

Standard library only, so the sandbox runs anywhere the tap's tests, demo and benchmark do.
Behaviour (paths, parameters, paging, envelopes, timestamp formats) follows Pipedrive's
official OpenAPI specs; see FACTS in the project brief for the points that are not in them.
"""

from __future__ import annotations

import base64
import bisect
import collections
import dataclasses
import json
import random
import re
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .data import ARCHIVED, DELETED, STATUSES, Dataset, day

ERROR_INFO = "Please check developers.pipedrive.com"
BURST_WINDOW_S = 2.0
DEFAULT_BURST_HEADER_LIMIT = 40
SERVER_ERROR_CYCLE = (500, 502, 503, 520, 524)
MAX_LIMIT = 500
DEFAULT_LIMIT = 100


@dataclasses.dataclass
class Faults:
    """Failure modes to inject; every counter-based fault counts API requests from 1."""

    rate_limit_every: int = 0  # every Nth API request -> 429 with Retry-After: 1
    server_error_every: int = 0  # every Mth -> 500, 502, 503, 520, 524 in turn
    latency_ms: int = 0  # added before each API response
    truncate_once: bool = False  # first 200 list response with data is cut mid-body
    burst_limit: int = 0  # >0: more than this many requests in a rolling 2 s -> 429


class ApiError(Exception):
    """Raised by route handlers to answer with Pipedrive's error envelope."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


# --------------------------------------------------------------------------- time parsing

_TS_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?)?\s*(Z|[+-]\d{2}:?\d{2})?$",
    re.IGNORECASE,
)


def parse_time(value: Any) -> float:
    """Epoch seconds from a datetime or RFC 3339 / v1 / date string; naive means UTC."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    m = _TS_RE.match(str(value).strip())
    if not m:
        raise ValueError(f"bad timestamp: {value!r}")
    y, mo, d, h, mi, s, frac, tz = m.groups()
    dt = datetime(
        int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0), tzinfo=timezone.utc
    )
    t = dt.timestamp() + (float(frac) if frac else 0.0)
    if tz and tz.upper() != "Z":
        sign = 1 if tz[0] == "+" else -1
        hh, mm = int(tz[1:3]), int(tz[-2:])
        t -= sign * (hh * 3600 + mm * 60)
    return t


# --------------------------------------------------------------------------- endpoint specs


@dataclasses.dataclass(frozen=True)
class ListSpec:
    """How one list endpoint selects, sorts and pages its table."""

    table: str
    api: str  # "v2" cursor, "v1" offset, "v1raw" unpaged
    sorts: tuple[str, ...] = ("id", "update_time", "add_time")
    updated_since: bool = True
    updated_until: bool = True
    filters: tuple[str, ...] = ()
    view: str = "default"  # default | archived  (deals, leads)
    since_kind: str = "rfc3339"


V2_LISTS: dict[str, ListSpec] = {
    "deals": ListSpec(
        "deals", "v2", filters=("owner_id", "person_id", "org_id", "pipeline_id", "stage_id")
    ),
    "deals/archived": ListSpec(
        "deals",
        "v2",
        filters=("owner_id", "person_id", "org_id", "pipeline_id", "stage_id"),
        view="archived",
    ),
    "persons": ListSpec("persons", "v2", filters=("owner_id", "org_id")),
    "organizations": ListSpec("organizations", "v2", filters=("owner_id",)),
    "activities": ListSpec(
        "activities",
        "v2",
        sorts=("id", "update_time", "add_time", "due_date"),
        filters=("owner_id", "deal_id", "lead_id", "person_id", "org_id", "done"),
    ),
    # Per spec, products take updated_since but no updated_until.
    "products": ListSpec(
        "products",
        "v2",
        sorts=("id", "name", "add_time", "update_time"),
        updated_until=False,
        filters=("owner_id",),
    ),
    "pipelines": ListSpec("pipelines", "v2", updated_since=False, updated_until=False),
    "stages": ListSpec(
        "stages",
        "v2",
        sorts=("id", "update_time", "add_time", "order_nr"),
        updated_since=False,
        updated_until=False,
        filters=("pipeline_id",),
    ),
}
V1_LISTS: dict[str, ListSpec] = {
    "notes": ListSpec(
        "notes",
        "v1",
        sorts=(
            "id",
            "user_id",
            "deal_id",
            "person_id",
            "org_id",
            "content",
            "add_time",
            "update_time",
        ),
        updated_until=False,
        filters=("user_id", "lead_id", "deal_id", "person_id", "org_id"),
    ),
    "leads": ListSpec(
        "leads",
        "v1",
        sorts=(
            "id",
            "title",
            "owner_id",
            "creator_id",
            "was_seen",
            "expected_close_date",
            "next_activity_id",
            "add_time",
            "update_time",
        ),
        updated_until=False,
        filters=("owner_id", "person_id", "organization_id"),
        since_kind="iso8601",
    ),
    # Archived leads: the spec lists no updated_since for this endpoint.
    "leads/archived": ListSpec(
        "leads",
        "v1",
        sorts=(
            "id",
            "title",
            "owner_id",
            "creator_id",
            "was_seen",
            "expected_close_date",
            "next_activity_id",
            "add_time",
            "update_time",
        ),
        updated_since=False,
        updated_until=False,
        filters=("owner_id", "person_id", "organization_id"),
        view="archived",
    ),
    "users": ListSpec("users", "v1raw", updated_since=False, updated_until=False),
    "activityTypes": ListSpec("activityTypes", "v1raw", updated_since=False, updated_until=False),
    "currencies": ListSpec("currencies", "v1raw", updated_since=False, updated_until=False),
    "filters": ListSpec(
        "filters", "v1raw", updated_since=False, updated_until=False, filters=("type",)
    ),
}
FIELD_ENTITIES = {
    "dealFields": "deal",
    "personFields": "person",
    "organizationFields": "organization",
    "productFields": "product",
    "activityFields": "activity",
    "noteFields": "note",
    "leadFields": "lead",
}
V2_FIELDS = ("dealFields", "personFields", "organizationFields", "productFields", "activityFields")
# v1 field endpoints that take start/limit per spec; activityFields and noteFields do not.
V1_PAGED_FIELDS = (
    "dealFields",
    "personFields",
    "organizationFields",
    "productFields",
    "leadFields",
)

# truth() stream names (normalised: lower case, no underscores) -> (endpoint, api).
TRUTH_STREAMS: dict[str, tuple[str, str]] = {
    "deals": ("deals", "v2"),
    "dealsarchived": ("deals/archived", "v2"),
    "archiveddeals": ("deals/archived", "v2"),
    "dealsdeleted": ("deals/deleted", "v2"),
    "deleteddeals": ("deals/deleted", "v2"),
    "persons": ("persons", "v2"),
    "organizations": ("organizations", "v2"),
    "activities": ("activities", "v2"),
    "products": ("products", "v2"),
    "pipelines": ("pipelines", "v2"),
    "stages": ("stages", "v2"),
    "notes": ("notes", "v1"),
    "leads": ("leads", "v1"),
    "leadsarchived": ("leads/archived", "v1"),
    "archivedleads": ("leads/archived", "v1"),
    "users": ("users", "v1"),
    "activitytypes": ("activityTypes", "v1"),
    "currencies": ("currencies", "v1"),
    "filters": ("filters", "v1"),
    **{k.lower(): (k, "fields") for k in FIELD_ENTITIES},
}
TOUCH_TABLES = {
    "deals": "deals",
    "persons": "persons",
    "organizations": "organizations",
    "activities": "activities",
    "products": "products",
    "pipelines": "pipelines",
    "stages": "stages",
    "notes": "notes",
    "leads": "leads",
    "users": "users",
    "activitytypes": "activityTypes",
    "currencies": "currencies",
    "filters": "filters",
}


def _norm(stream: str) -> str:
    return stream.replace("_", "").replace("-", "").lower()


def _encode_cursor(obj: dict[str, Any]) -> str:
    raw = json.dumps(obj, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        obj = json.loads(raw)
        if not isinstance(obj, dict):
            raise ValueError
        return obj
    except (ValueError, TypeError) as exc:
        raise ApiError(400, "Invalid cursor") from exc


def _limit(params: dict[str, str]) -> int:
    raw = params.get("limit")
    if raw in (None, ""):
        return DEFAULT_LIMIT
    try:
        n = int(raw)
    except ValueError as exc:
        raise ApiError(400, "Validation failed: limit: must be integer") from exc
    if n < 1:
        raise ApiError(400, "Validation failed: limit: must be >= 1")
    return min(n, MAX_LIMIT)  # Pipedrive caps at 500


# --------------------------------------------------------------------------- the engine


class Engine:
    """Query logic over a Dataset; thread-safe through one lock."""

    def __init__(self, data: Dataset) -> None:
        self.data = data
        self.lock = threading.RLock()
        self.version = 0
        self._cache: collections.OrderedDict[Any, list[tuple[Any, Any, int]]] = (
            collections.OrderedDict()
        )
        self._touch_round = 0

    # ------------------------------------------------------------- selection

    def _visible(self, spec: ListSpec, endpoint: str, i: int) -> bool:
        t = self.data.tables[spec.table]
        f = t.flags[i]
        if endpoint == "deals/deleted":
            return bool(f & DELETED)
        if spec.table in ("users",):
            return True  # deactivated users are still listed
        if spec.view == "archived":
            return bool(f & ARCHIVED) and not f & DELETED
        return not f & (DELETED | ARCHIVED)

    def _sort_key(self, spec: ListSpec, field: str) -> Callable[[int], Any]:
        t = self.data.tables[spec.table]
        if field == "id":
            return lambda i: t.ids[i]
        if field == "update_time":
            return lambda i: t.upd[i]
        if field == "add_time":
            return lambda i: t.add[i]
        api = "v1" if spec.api.startswith("v1") else "v2"

        def from_record(i: int) -> Any:
            v = self.data.render(spec.table, i, api).get(field)
            if isinstance(v, bool):
                return int(v)
            return "" if v is None else v

        return from_record

    def select(
        self, endpoint: str, spec: ListSpec, params: dict[str, str], sort: list[tuple[str, bool]]
    ) -> list[tuple[Any, Any, int]]:
        """Ordered (sort key, id, index) rows matching params; cached until data changes."""
        key = (endpoint, self.version, tuple(sorted(params.items())), tuple(sort))
        with self.lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
            rows = self._select(endpoint, spec, params, sort)
            self._cache[key] = rows
            while len(self._cache) > 16:
                self._cache.popitem(last=False)
            return rows

    def _select(
        self, endpoint: str, spec: ListSpec, params: dict[str, str], sort: list[tuple[str, bool]]
    ) -> list[tuple[Any, Any, int]]:
        t = self.data.tables[spec.table]
        since = until = None
        try:
            if spec.updated_since and params.get("updated_since"):
                since = parse_time(params["updated_since"])
            if spec.updated_until and params.get("updated_until"):
                until = parse_time(params["updated_until"])
            start_date = parse_time(params["start_date"]) if params.get("start_date") else None
            end_date = parse_time(params["end_date"]) + 86400 if params.get("end_date") else None
        except ValueError as exc:
            raise ApiError(400, f"Validation failed: {exc}") from exc
        if spec.table != "notes":
            start_date = end_date = None
        wanted = {f: params[f] for f in spec.filters if params.get(f) not in (None, "")}
        ids_param = params.get("ids")
        id_set = {x.strip() for x in ids_param.split(",") if x.strip()} if ids_param else None
        status_set = None
        if spec.table == "deals" and params.get("status"):
            status_set = {s.strip() for s in params["status"].split(",") if s.strip()}
            bad = status_set - {*STATUSES, "deleted"}
            if bad:
                raise ApiError(400, f"Validation failed: status: invalid value {sorted(bad)}")
        out_idx = []
        for i in range(len(t)):
            if spec.table == "deals" and endpoint != "deals/deleted":
                f = t.flags[i]
                if bool(f & ARCHIVED) != (spec.view == "archived"):
                    continue
                if status_set is not None:
                    if t.status(i) not in status_set:
                        continue
                elif f & DELETED:
                    continue
            elif not self._visible(spec, endpoint, i):
                continue
            if since is not None and t.upd[i] < since:
                continue
            if until is not None and t.upd[i] >= until:
                continue
            if start_date is not None and t.add[i] < start_date:
                continue
            if end_date is not None and t.add[i] >= end_date:
                continue
            if id_set is not None and str(t.ids[i]) not in id_set:
                continue
            if wanted and not self._match_links(spec, i, wanted):
                continue
            out_idx.append(i)
        # Sort: last key first (stable sort), ties always broken by id ascending.
        out_idx.sort(key=lambda i: t.ids[i])
        for field, desc in reversed(sort):
            kf = self._sort_key(spec, field)
            out_idx.sort(key=kf, reverse=desc)
        primary = self._sort_key(spec, sort[0][0]) if sort else (lambda i: t.ids[i])
        return [(primary(i), t.ids[i], i) for i in out_idx]

    def _match_links(self, spec: ListSpec, i: int, wanted: dict[str, str]) -> bool:
        if spec.table == "stages":
            links = {"pipeline_id": i // 5 + 1}
        elif spec.table == "filters":
            links = {"type": self.data.render("filters", i, "v1")["type"]}
        else:
            links = self.data.links(spec.table, i)
        for k, v in wanted.items():
            have = links.get(k)
            if isinstance(have, bool):
                have = "true" if have else "false"
                v = {"1": "true", "0": "false"}.get(v.lower(), v.lower())
            if str(have) != v:
                return False
        return True

    # ------------------------------------------------------------- list endpoints

    def list_v2(self, endpoint: str, params: dict[str, str]) -> tuple[dict[str, Any], bool]:
        spec = V2_LISTS[endpoint]
        sort_by = params.get("sort_by") or "id"
        direction = (params.get("sort_direction") or "asc").lower()
        if sort_by not in spec.sorts:
            raise ApiError(
                400, f"Validation failed: sort_by: must be one of {', '.join(spec.sorts)}"
            )
        if direction not in ("asc", "desc"):
            raise ApiError(400, "Validation failed: sort_direction: must be one of asc, desc")
        limit = _limit(params)
        filt = {
            k: v
            for k, v in params.items()
            if k not in ("cursor", "limit", "sort_by", "sort_direction")
        }
        # Rows come ascending by (key, id); desc pages walk them backwards (ties by id desc).
        rows = self.select(endpoint, spec, filt, [(sort_by, False)])
        desc = direction == "desc"
        if params.get("cursor"):
            c = _decode_cursor(params["cursor"])
            if c.get("field") != sort_by or c.get("sortDirection") != direction:
                raise ApiError(400, "Invalid cursor: sort parameters differ from the first request")
            probe = (c.get("fieldValue"), c.get("id"))
            try:
                if desc:
                    pos = bisect.bisect_left(rows, probe, key=lambda r: (r[0], r[1]))
                else:
                    pos = bisect.bisect_right(rows, probe, key=lambda r: (r[0], r[1]))
            except TypeError as exc:
                raise ApiError(400, "Invalid cursor") from exc
        else:
            pos = len(rows) if desc else 0
        if desc:
            page_rows = rows[max(0, pos - limit) : pos][::-1]
            more = pos - limit > 0
        else:
            page_rows = rows[pos : pos + limit]
            more = pos + limit < len(rows)
        opts = {
            "include_option_labels": params.get("include_option_labels", "").lower() == "true",
            "include_fields": params.get("include_fields", ""),
        }
        data = [self._v2_record(spec, r[2], opts, params) for r in page_rows]
        nxt = None
        if more and page_rows:
            last = page_rows[-1]
            nxt = _encode_cursor(
                {"field": sort_by, "fieldValue": last[0], "sortDirection": direction, "id": last[1]}
            )
        return {"success": True, "data": data, "additional_data": {"next_cursor": nxt}}, bool(data)

    def _v2_record(
        self, spec: ListSpec, i: int, opts: dict[str, Any], params: dict[str, str]
    ) -> dict[str, Any]:
        rec = self.data.render(spec.table, i, "v2", opts)
        wanted = params.get("custom_fields")
        if wanted and isinstance(rec.get("custom_fields"), dict):
            keys = {k.strip() for k in wanted.split(",")}
            rec["custom_fields"] = {k: v for k, v in rec["custom_fields"].items() if k in keys}
        return rec

    def list_v1(self, endpoint: str, params: dict[str, str]) -> tuple[dict[str, Any], bool]:
        spec = V1_LISTS[endpoint]
        sort = self._parse_v1_sort(spec, params.get("sort"))
        filt = {k: v for k, v in params.items() if k not in ("start", "limit", "sort")}
        rows = self.select(endpoint, spec, filt, sort)
        if spec.api == "v1raw":
            data = [self.data.render(spec.table, r[2], "v1") for r in rows]
            return {"success": True, "data": data}, bool(data)
        start, limit = self._start(params), _limit(params)
        page = rows[start : start + limit]
        more = start + limit < len(rows)
        data = [self.data.render(spec.table, r[2], "v1") for r in page]
        if spec.table == "leads":
            # The leads spec documents a flat additional_data (no `pagination` object, no
            # next_start); we follow the spec so taps must not rely on `pagination` here.
            addl: dict[str, Any] = {
                "start": start,
                "limit": limit,
                "more_items_in_collection": more,
            }
        else:
            pag: dict[str, Any] = {"start": start, "limit": limit, "more_items_in_collection": more}
            if more:
                pag["next_start"] = start + limit
            addl = {"pagination": pag}
        return {"success": True, "data": data or None, "additional_data": addl}, bool(data)

    @staticmethod
    def _start(params: dict[str, str]) -> int:
        try:
            start = int(params.get("start") or 0)
        except ValueError as exc:
            raise ApiError(400, "Validation failed: start: must be integer") from exc
        if start < 0:
            raise ApiError(400, "Validation failed: start: must be >= 0")
        return start

    @staticmethod
    def _parse_v1_sort(spec: ListSpec, raw: str | None) -> list[tuple[str, bool]]:
        if not raw:
            return [("id", False)]
        out = []
        for part in raw.split(","):
            bits = part.strip().split()
            if not bits:
                continue
            field = bits[0]
            mode = bits[1].upper() if len(bits) > 1 else "ASC"
            if field not in spec.sorts or mode not in ("ASC", "DESC") or len(bits) > 2:
                raise ApiError(400, f"Invalid sort field or mode: {part.strip()}")
            out.append((field, mode == "DESC"))
        return out or [("id", False)]

    def fields_v1(self, name: str, params: dict[str, str]) -> tuple[dict[str, Any], bool]:
        rows = self.data.fields_v1(FIELD_ENTITIES[name])
        if name not in V1_PAGED_FIELDS:
            addl = {
                "pagination": {"start": 0, "limit": len(rows), "more_items_in_collection": False}
            }
            return {"success": True, "data": rows, "additional_data": addl}, bool(rows)
        start, limit = self._start(params), _limit(params)
        page = rows[start : start + limit]
        more = start + limit < len(rows)
        pag: dict[str, Any] = {"start": start, "limit": limit, "more_items_in_collection": more}
        if more:
            pag["next_start"] = start + limit
        return {
            "success": True,
            "data": page or None,
            "additional_data": {"pagination": pag},
        }, bool(page)

    def fields_v2(self, name: str, params: dict[str, str]) -> tuple[dict[str, Any], bool]:
        rows = self.data.fields_v2(FIELD_ENTITIES[name])
        limit = _limit(params)
        pos = 0
        if params.get("cursor"):
            c = _decode_cursor(params["cursor"])
            if not isinstance(c.get("offset"), int):
                raise ApiError(400, "Invalid cursor")
            pos = c["offset"]
        page = rows[pos : pos + limit]
        nxt = _encode_cursor({"offset": pos + limit}) if pos + limit < len(rows) else None
        return {"success": True, "data": page, "additional_data": {"next_cursor": nxt}}, bool(page)

    # ------------------------------------------------------------- truth and mutation

    def truth(self, stream: str, since: Any = None) -> set[Any]:
        norm = _norm(stream)
        if norm not in TRUTH_STREAMS:
            raise KeyError(f"unknown stream {stream!r}; known: {sorted(TRUTH_STREAMS)}")
        endpoint, api = TRUTH_STREAMS[norm]
        if api == "fields":
            return {row["id"] for row in self.data.fields_v1(FIELD_ENTITIES[endpoint])}
        if endpoint == "deals/deleted":
            spec = V2_LISTS["deals"]
        else:
            spec = V2_LISTS.get(endpoint) or V1_LISTS[endpoint]
        t = self.data.tables[spec.table]
        # Users have no server-side filter, but a correct sync emits only those whose
        # `modified` (their update time here) is at or after `since`.
        incremental = spec.updated_since or endpoint in (
            "deals/archived",
            "deals/deleted",
            "leads/archived",
            "users",
        )
        s = parse_time(since) if since is not None and incremental else None
        with self.lock:
            return {
                t.ids[i]
                for i in range(len(t))
                if self._visible(spec, endpoint, i) and (s is None or t.upd[i] >= s)
            }

    def _table_for(self, stream: str) -> Any:
        norm = _norm(stream)
        if norm not in TOUCH_TABLES:
            raise KeyError(f"cannot touch/delete stream {stream!r}")
        return self.data.tables[TOUCH_TABLES[norm]]

    def _now(self) -> int:
        return max(int(time.time()), self.data.max_seeded + 1)

    def touch(self, stream: str, n: int | None = None, ids: list[Any] | None = None) -> list[Any]:
        with self.lock:
            t = self._table_for(stream)
            if ids is not None:
                idx = [t.idx(x) for x in ids]
                missing = [x for x, i in zip(ids, idx, strict=True) if i is None]
                if missing:
                    raise KeyError(f"unknown ids for {stream}: {missing[:5]}")
            else:
                live = [i for i in range(len(t)) if not t.flags[i] & DELETED]
                self._touch_round += 1
                r = random.Random(f"{self.data.seed}|touch|{stream}|{self._touch_round}")
                idx = r.sample(live, min(n if n is not None else 1, len(live)))
            now = self._now()
            for i in idx:
                assert i is not None
                t.upd[i] = now
                t.rev[i] = t.rev.get(i, 0) + 1
            t.version += 1
            self.version += 1
            return [t.ids[i] for i in idx if i is not None]

    def delete(self, stream: str, ids: list[Any]) -> list[Any]:
        """Soft-delete like Pipedrive: deals stay visible with status=deleted for 30 days."""
        with self.lock:
            t = self._table_for(stream)
            now = self._now()
            done = []
            for x in ids:
                i = t.idx(x)
                if i is None:
                    continue
                t.flags[i] |= DELETED
                t.upd[i] = now
                done.append(t.ids[i])
            t.version += 1
            self.version += 1
            return done


# --------------------------------------------------------------------------- HTTP layer


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    sandbox: Sandbox

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up mid-response (e.g. after a truncated body) are expected."""


def _envelope(error: str, code: int) -> dict[str, Any]:
    return {
        "success": False,
        "error": error,
        "errorCode": code,
        "error_info": ERROR_INFO,
        "data": None,
        "additional_data": None,
    }


_HTML_5XX = (
    "<!DOCTYPE html><html><head><title>{code} | api.pipedrive.com</title></head>"
    "<body><h1>Error {code}</h1><p>{text}</p><p>cloudflare</p></body></html>"
)
_5XX_TEXT = {
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable",
    520: "Web server is returning an unknown error",
    524: "A timeout occurred",
}


class Handler(BaseHTTPRequestHandler):
    """One request: control routes under /_sandbox/, everything else is the fake API."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test and benchmark output clean."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # ------------------------------------------------------------- plumbing

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _send(
        self, status: int, payload: Any, extra: dict[str, str] | None = None, truncate: bool = False
    ) -> None:
        if isinstance(payload, str):
            body, ctype = payload.encode(), "text/html; charset=utf-8"
        else:
            body, ctype = (
                json.dumps(payload, ensure_ascii=False).encode(),
                "application/json; charset=utf-8",
            )
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if truncate:
            # Claim the full length but stop halfway and hang up, like a dropped connection.
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def _dispatch(self, method: str) -> None:
        sb = self.server.sandbox
        parts = urlsplit(self.path)
        path = parts.path
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        body = self._body()
        if path.startswith("/_sandbox/"):
            try:
                status, payload = sb._control(method, path, params, body)
            except (KeyError, ValueError, TypeError) as exc:
                status, payload = 400, {"success": False, "error": str(exc)}
            self._send(status, payload)
            return
        sb._record(method, path, params, dict(self.headers.items()))
        faults = sb.faults
        if faults.latency_ms:
            time.sleep(faults.latency_ms / 1000)
        count, limit = sb._burst_tick()
        remaining = max(0, limit - count)
        rl = {
            "x-ratelimit-limit": str(limit),
            "x-ratelimit-remaining": str(remaining),
            "x-ratelimit-reset": str(int(BURST_WINDOW_S)),
        }
        if faults.burst_limit and count > faults.burst_limit:
            self._send(429, _envelope("Request over limit", 429), {**rl, "Retry-After": "1"})
            return
        if method != "GET":
            self._send(405, _envelope("Method not allowed: the sandbox is read-only", 405), rl)
            return
        token = self.headers.get("x-api-token") or params.get("api_token")
        if token != sb.token:
            self._send(
                401,
                {
                    "success": False,
                    "error": "unauthorized access",
                    "errorCode": 401,
                    "error_info": ERROR_INFO,
                },
                rl,
            )
            return
        fault = sb._next_fault()
        if fault == 429:
            self._send(
                429,
                _envelope("Request over limit", 429),
                {**rl, "x-ratelimit-remaining": "0", "Retry-After": "1"},
            )
            return
        if fault:
            text = _5XX_TEXT[fault]
            if fault in (502, 520, 524):  # these come from the CDN as HTML, not JSON
                self._send(fault, _HTML_5XX.format(code=fault, text=text), rl)
            else:
                self._send(fault, _envelope(text, fault), rl)
            return
        api_params = {k: v for k, v in params.items() if k != "api_token"}
        try:
            payload, has_data = sb._route(path, api_params)
        except ApiError as exc:
            self._send(exc.status, _envelope(exc.error, exc.status), rl)
            return
        truncate = has_data and sb._take_truncate()
        self._send(200, payload, rl, truncate=truncate)


class Sandbox:
    """A local fake Pipedrive: ``with Sandbox(scale=0.05) as sb: requests.get(sb.url + ...)``."""

    def __init__(
        self,
        seed: int = 1,
        scale: float = 1.0,
        token: str = "sandbox-token",
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Faults | None = None,
    ) -> None:
        self.seed, self.scale, self.token, self.host, self.port = seed, scale, token, host, port
        self.faults = faults or Faults()
        self.data = Dataset(seed, scale)
        self.engine = Engine(self.data)
        self.requests: list[tuple[str, str, dict[str, str], dict[str, str]]] = []
        self._lock = threading.Lock()
        self._fault_n = 0
        self._error_n = 0
        self._burst: collections.deque[float] = collections.deque()
        self._truncated = False
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # ------------------------------------------------------------- lifecycle

    def start(self) -> str:
        """Serve in a daemon thread; returns the base URL (no trailing slash)."""
        if self._server is not None:
            return self.url
        self._server = _Server((self.host, self.port), Handler)
        self._server.sandbox = self
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}"
        # A short poll interval keeps stop() (and so every test teardown) fast.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="pipedrive-sandbox",
            daemon=True,
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------- public helpers

    def truth(self, stream: str, since: datetime | str | None = None) -> set[Any]:
        """Primary keys a correct sync of `stream` from `since` must yield."""
        return self.engine.truth(stream, since)

    def touch(self, stream: str, n: int | None = None, ids: list[Any] | None = None) -> list[Any]:
        """Set records' update time to now (past all seeded data) and change a field."""
        return self.engine.touch(stream, n, ids)

    def delete(self, stream: str, ids: list[Any]) -> list[Any]:
        return self.engine.delete(stream, ids)

    def request_count(self, path_prefix: str | None = None) -> int:
        with self._lock:
            if path_prefix is None:
                return len(self.requests)
            return sum(1 for r in self.requests if r[1].startswith(path_prefix))

    def reset_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def set_faults(self, **kw: Any) -> Faults:
        """Change faults at run time; setting truncate_once=True arms it again."""
        names = {f.name for f in dataclasses.fields(Faults)}
        unknown = set(kw) - names
        if unknown:
            raise TypeError(f"unknown fault(s): {sorted(unknown)}")
        with self._lock:
            self.faults = dataclasses.replace(self.faults, **kw)
            if kw.get("truncate_once"):
                self._truncated = False
            self._fault_n = 0
        return self.faults

    # ------------------------------------------------------------- internals used by Handler

    def _record(
        self, method: str, path: str, params: dict[str, str], headers: dict[str, str]
    ) -> None:
        with self._lock:
            self.requests.append((method, path, params, headers))

    def _burst_tick(self) -> tuple[int, int]:
        now = time.monotonic()
        with self._lock:
            self._burst.append(now)
            while self._burst and self._burst[0] <= now - BURST_WINDOW_S:
                self._burst.popleft()
            return len(self._burst), self.faults.burst_limit or DEFAULT_BURST_HEADER_LIMIT

    def _next_fault(self) -> int:
        with self._lock:
            self._fault_n += 1
            n, f = self._fault_n, self.faults
            if f.rate_limit_every and n % f.rate_limit_every == 0:
                return 429
            if f.server_error_every and n % f.server_error_every == 0:
                code = SERVER_ERROR_CYCLE[self._error_n % len(SERVER_ERROR_CYCLE)]
                self._error_n += 1
                return code
            return 0

    def _take_truncate(self) -> bool:
        with self._lock:
            if self.faults.truncate_once and not self._truncated:
                self._truncated = True
                return True
            return False

    def _route(self, path: str, params: dict[str, str]) -> tuple[dict[str, Any], bool]:
        path = path.rstrip("/")
        if path.startswith("/api/v2/"):
            name = path[len("/api/v2/") :]
            if name in V2_LISTS:
                return self.engine.list_v2(name, params)
            if name in V2_FIELDS:
                return self.engine.fields_v2(name, params)
        else:
            for prefix in ("/api/v1/", "/v1/"):
                if path.startswith(prefix):
                    name = path[len(prefix) :]
                    if name in V1_LISTS:
                        return self.engine.list_v1(name, params)
                    if name in FIELD_ENTITIES:
                        return self.engine.fields_v1(name, params)
                    break
        raise ApiError(404, f"Unknown method {path}")

    def _control(
        self, method: str, path: str, params: dict[str, str], body: bytes
    ) -> tuple[int, Any]:
        doc = json.loads(body) if body.strip() else {}
        if path == "/_sandbox/truth" and method == "GET":
            stream = params["stream"]
            ids = self.truth(stream, params.get("since") or None)
            return 200, {"stream": stream, "ids": sorted(ids, key=str)}
        if path == "/_sandbox/touch" and method == "POST":
            return 200, {"ids": self.touch(doc["stream"], doc.get("n"), doc.get("ids"))}
        if path == "/_sandbox/delete" and method == "POST":
            return 200, {"ids": self.delete(doc["stream"], doc["ids"])}
        if path == "/_sandbox/requests" and method == "GET":
            with self._lock:
                by_path = collections.Counter(r[1] for r in self.requests)
                return 200, {"count": len(self.requests), "by_path": dict(by_path)}
        if path == "/_sandbox/reset_requests" and method == "POST":
            self.reset_requests()
            return 200, {"count": 0}
        if path == "/_sandbox/faults" and method in ("POST", "GET"):
            faults = self.set_faults(**doc) if method == "POST" else self.faults
            return 200, dataclasses.asdict(faults)
        return 404, {"success": False, "error": f"unknown sandbox route {method} {path}"}


__all__ = ["Faults", "Sandbox", "day", "parse_time"]
