"""HTTP server that imitates the Pipedrive v1/v2 list endpoints the tap reads.

Standard library only, so the sandbox runs anywhere the tap's tests, demo and benchmark do.
Behaviour (paths, parameters, paging, envelopes, timestamp formats) follows Pipedrive's
official OpenAPI specs (linked from https://developers.pipedrive.com/docs/api/v1); where they
are silent, Pipedrive's API documentation and changelog (e.g. ``/v1/recents`` reaching back
one month).

Endpoints beyond the core lists (all GET; each as its spec documents it):

- v2 ``/deals``, ``/deals/archived``, ``/persons``, ``/organizations``, ``/activities``:
  ``include_fields`` (checked against the spec's list) adds the optional fields; they are
  absent otherwise. ``ids`` <= 100, ``custom_fields`` <= 15 keys, else 400.
- v2 ``/deals/products?deal_ids=`` (required, <= 100 ids, comma list or repeated key) and
  ``/deals/{id}/products``: cursor paging, ``sort_by`` id|deal_id|add_time|update_time|order_nr.
- v2 ``/projects`` (``status`` incl. deleted, ``phase_id``, ``deal_id``, ``person_id``,
  ``org_id``), ``/projects/archived``, ``/tasks`` (``is_done``, ``is_milestone``,
  ``assignee_id``, ``project_id``, ``parent_task_id`` incl. ``null``): cursor paging by id;
  the spec gives them no sort and no ``updated_since``. Projects carry custom fields under
  ``custom_fields``, defined by the v2-only ``/projectFields`` (cursor paging). ``/boards``
  and ``/phases?board_id=`` (required) answer whole, ``additional_data`` null;
  ``/projectTemplates`` pages by cursor.
- v1 ``/files`` (offset, limit capped at 100, ``sort`` id|update_time; deleted files only
  with the legacy ``include_deleted_files=1``), ``/leadLabels`` and ``/permissionSets``
  (``app``) unpaged, ``/roles`` (offset; no ``next_start``, as in the spec).
- v1 ``/goals/find``: ``data.goals``, unpaged; only the token user's goals unless one of the
  parameters the spec marks "everyone's goals will be returned" (or ``assignee.id``) is
  given; ``is_active`` defaults to true. All goals: ``assignee.type`` in person, company,
  team, each with ``is_active=true`` and ``is_active=false``.
- v1 ``/callLogs``: the token user's call logs only (no user parameter), limit capped at 50.
- v1 ``/deals/{id}/participants`` and ``/deals/{id}/flow``: offset paging (the spec's flow
  takes start/limit, not a cursor), no ``next_start``; flow newest first, custom-field
  changes only with ``all_changes=1``, ``items`` filter.
- v1 ``/mailbox/mailThreads?folder=`` (required: inbox, drafts, sent, archive; a thread can
  be in inbox and sent): offset paging, newest first, no ``additional_data`` (the spec
  documents none: page until a short page); ``/mailbox/mailThreads/{id}/mailMessages``.
- v1 ``/recents?since_timestamp=YYYY-MM-DD HH:MM:SS`` (required, that format): ``items``,
  offset paging, oldest first, at most one month back from "now"; deleted rows included.

``Sandbox.truth(stream, since)``: ids a correct sync from ``since`` yields. ``since``
filters by update time where the API can (``updated_since``) and, by default, where the
tap filters itself: files (``incremental=`` overrides). Projects, tasks, mail
threads and messages, and reference tables (users, lead labels, roles, permission sets,
goals, call logs, field definitions) are whole. Deal children (deal_products, deal_participants,
deal_flow) are those of the deals ``truth("deals", since)`` and
``truth("archived_deals", since)`` return (not deleted); mail_messages those of the threads
``truth("mail_threads", since)`` returns;
deal_flow keys are (deal_id, object, data.id) with custom-field changes included (as with
all_changes=1); recents keys are (item, id). ``Sandbox.deleted(stream)``
lists soft-deleted ids.

Admin API (``/_sandbox/...``; JSON in and out, no token needed, never counted as an API
request nor touched by faults; each does what the ``Sandbox`` method of the same name
does, ``set_faults`` for faults):

- ``GET /_sandbox/truth?stream=S[&since=T][&incremental=1|0][&with_deleted=1]``:
  ``{"stream": S, "ids": [...]}``, the primary keys a correct sync of S from T yields (see
  ``Sandbox.truth`` above; ``incremental`` overrides whether ``since`` filters the stream).
- ``GET /_sandbox/deleted?stream=S[&since=T]``: ``{"stream": S, "ids": [...]}``, the
  soft-deleted records of S (deleted at or after T).
- ``POST /_sandbox/touch`` ``{"stream": S, "n": N}`` or ``{"stream": S, "ids": [...]}``: sets
  those records' update time to now (N random live records, 1 by default) and changes a
  field, as an edit in Pipedrive would; answers ``{"ids": [...]}``, the records touched.
- ``POST /_sandbox/delete`` ``{"stream": S, "ids": [...]}``: soft-deletes them as Pipedrive
  does (update time now); answers ``{"ids": [...]}``, those that exist.
- ``GET /_sandbox/requests[?timeline=1]``: ``{"count": N, "by_path": {path: N}}``, the API
  requests served since start (or the last reset); ``timeline=1`` adds ``"timeline"``:
  ``[seconds after the first request, path]`` per request.
- ``POST /_sandbox/reset_requests``: forgets those requests; answers ``{"count": 0}``.
- ``GET /_sandbox/faults``: the current faults (every ``Faults`` field). ``POST
  /_sandbox/faults`` with a JSON object of ``Faults`` fields changes the fields it names and
  keeps the others (it merges: to clear a fault, post it at 0, false or ``""``, e.g.
  ``{"latency_ms": 0}``); answers the faults now in force and restarts the count the
  counter-based faults use.

An unknown stream or fault, a missing ``stream`` or ``ids``, or a body that is not JSON
answers 400, an unknown route 404, each with ``{"success": false, "error": ...}``.

Fault injection (``Faults``; set at start, by ``Sandbox.set_faults(**kw)`` or by
``POST /_sandbox/faults`` with a JSON object; ``GET /_sandbox/faults`` shows them; all off by
default). Faults never touch the ``/_sandbox/`` routes. Counter-based faults number API
requests (every request outside ``/_sandbox/``, whatever its answer) from 1; every
``set_faults`` call restarts that count. Per API request, in this order:

- ``stall_every`` N: sleep ``stall_seconds`` (default 5.0), then carry on (a client with a
  shorter read timeout times out); with ``drop_every`` on the same request: stall, then close.
  ``stall_path`` (e.g. ``/v1/recents``) limits the stalls to the paths it begins.
- ``drop_every`` N: close the connection without any response (``RemoteDisconnected``).
- ``latency_ms``: sleep before every answer.
- ``block_after`` N: requests past the Nth get 403 with an HTML "you have been blocked" page
  (``text/html``), the CDN's abuse block; before the token check.
- ``burst_limit`` B: over B requests in a rolling 2 s -> 429, x-ratelimit-* and Retry-After: 1.
- (405 for non-GET, 401 for a wrong token.)
- ``budget_exhausted_after`` N: requests past the Nth get 429 with the JSON envelope and
  ``x-ratelimit-remaining: 0``, ``x-ratelimit-reset: 36000``, ``Retry-After: 36000`` (the
  daily budget is spent; retrying soon is pointless).
- ``rate_limit_every`` N: every Nth -> 429 with the JSON envelope; ``rate_limit_headers``
  says which headers it carries: ``all`` (x-ratelimit-limit/remaining 0/reset 2 and
  Retry-After: 1), ``ratelimit`` (x-ratelimit-* only, reset 1), ``retry-after``
  (Retry-After: 1 only), ``none``.
- ``server_error_every`` M: every Mth -> 500, 502, 503, 520, 524 in turn (502/520/524 HTML).
- ``refused_paths``: comma-separated ``path=status`` entries (e.g.
  ``/api/v2/projects=403,/v1/goals=404``): requests for that exact path get that status
  (403, 404 or 410) with the JSON envelope, after the token check. An account whose plan
  lacks a feature or whose user may not read it (403), an API without the endpoint (404).
- ``non_json_once``: the first 200 list response with data is a complete ``text/html``
  page (``502 Bad Gateway``) with status 200; ``truncate_once``: the first 200 list response
  with data stops halfway through its declared Content-Length; ``trickle_once``: the first
  200 list response with data sends its body a byte every 0.25 s (a stalling proxy: every
  read gets something, so only a deadline on the whole answer ends it). Each fires once (if
  several are armed, non_json_once takes the first such response, then truncate_once);
  setting it True again re-arms it.
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

from .data import (
    ARCHIVED,
    DELETED,
    MAIL_FOLDERS,
    PERMISSION_SETS,
    PROJECT_STATUSES,
    STATUS_SHIFT,
    STATUSES,
    TEMPLATES,
    Dataset,
    day,
    v1_ts,
)

ERROR_INFO = "Please check developers.pipedrive.com"
BURST_WINDOW_S = 2.0
DEFAULT_BURST_HEADER_LIMIT = 40
SERVER_ERROR_CYCLE = (500, 502, 503, 520, 524)
MAX_LIMIT = 500
DEFAULT_LIMIT = 100
FILES_MAX_LIMIT = 100  # /v1/files: "a maximum value of 100 is allowed"
CALL_LOGS_MAX_LIMIT = 50  # /v1/callLogs: "The upper limit is 50"
DEAL_IDS_MAX = 100  # /api/v2/deals/products: "A maximum of 100 deal IDs"
V2_IDS_MAX = 100  # v2 lists' `ids`: "up to 100 entity ids"
V2_CUSTOM_FIELDS_MAX = 15  # v2 lists' `custom_fields`: "A maximum of 15 keys is allowed"
# /v1/recents returns at most one month of history (Pipedrive, since 2024-12-01), counted
# back from the sandbox's "now" (wall clock, or just past the newest seeded record).
RECENTS_WINDOW_S = 30 * 86400
_V1_TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


RATE_LIMIT_HEADER_MODES = ("all", "ratelimit", "retry-after", "none")
DAILY_RESET_S = 36000  # budget_exhausted_after: the daily window resets in 10 h


@dataclasses.dataclass
class Faults:
    """Failure modes to inject (all off by default); see "Fault injection" in the module docs.

    Counter-based faults count API requests (every request outside ``/_sandbox/``, whatever
    its answer) from 1; every ``Sandbox.set_faults`` call restarts the count."""

    rate_limit_every: int = 0  # every Nth API request -> 429 (headers: rate_limit_headers)
    server_error_every: int = 0  # every Mth -> 500, 502, 503, 520, 524 in turn
    latency_ms: int = 0  # added before each API response
    truncate_once: bool = False  # first 200 list response with data is cut mid-body
    trickle_once: bool = False  # first 200 list response with data: 1 byte every 0.25 s
    burst_limit: int = 0  # >0: more than this many requests in a rolling 2 s -> 429
    # What the rate_limit_every 429 carries: "all" (x-ratelimit-* and Retry-After: 1),
    # "ratelimit" (x-ratelimit-* only, reset 1 s), "retry-after" (Retry-After: 1 only), "none".
    rate_limit_headers: str = "all"
    budget_exhausted_after: int = 0  # >0: API requests past this many -> 429, reset in 10 h
    block_after: int = 0  # >0: API requests past this many -> 403 HTML abuse block page
    drop_every: int = 0  # every Nth API request: connection closed, no response at all
    stall_every: int = 0  # every Nth API request: sleep stall_seconds, then answer
    stall_seconds: float = 5.0
    stall_path: str = ""  # if set, only requests whose path starts with it stall
    non_json_once: bool = False  # first 200 list response with data -> 200 text/html page
    refused_paths: str = ""  # "path=status,...": that path -> 403, 404 or 410 (JSON envelope)

    def __post_init__(self) -> None:
        """Coerce JSON/CLI values to the field types; reject what cannot be a fault setting."""
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            kind = f.type if isinstance(f.type, str) else f.type.__name__
            if kind == "bool":
                if not isinstance(v, (bool, int)) or v not in (0, 1):
                    raise ValueError(f"{f.name} must be true or false, not {v!r}")
                v = bool(v)
            elif kind in ("int", "float"):
                if isinstance(v, bool):
                    raise ValueError(f"{f.name} must be a number, not {v!r}")
                v = int(v) if kind == "int" else float(v)
                if v < 0:
                    raise ValueError(f"{f.name} must be >= 0, not {v!r}")
            elif kind == "str":
                v = str(v)
            setattr(self, f.name, v)
        #: `refused_paths` parsed once (a malformed one is rejected now, not per request).
        self.refused = self._parse_refused()
        if self.rate_limit_headers not in RATE_LIMIT_HEADER_MODES:
            raise ValueError(
                f"rate_limit_headers must be one of {RATE_LIMIT_HEADER_MODES}, "
                f"not {self.rate_limit_headers!r}"
            )

    def _parse_refused(self) -> dict[str, int]:
        """``refused_paths`` as path -> status."""
        refused: dict[str, int] = {}
        for entry in filter(None, (e.strip() for e in self.refused_paths.split(","))):
            path, _, status = entry.rpartition("=")
            if not path.startswith("/") or status not in ("403", "404", "410"):
                raise ValueError(
                    f"refused_paths entries are path=403, path=404 or path=410, not {entry!r}"
                )
            refused[path] = int(status)
        return refused


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
    api: str  # "v2" cursor, "v1" offset, "v1raw"/"v2raw" unpaged
    sorts: tuple[str, ...] = ("id", "update_time", "add_time")
    updated_since: bool = True
    updated_until: bool = True
    filters: tuple[str, ...] = ()
    view: str = "default"  # default | archived  (deals, leads, projects)
    since_kind: str = "rfc3339"
    max_limit: int = MAX_LIMIT  # per-endpoint page cap (files 100)
    next_start: bool = True  # v1: the spec documents `pagination.next_start`
    required: tuple[str, ...] = ()  # parameters the spec marks required: 400 without


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
    "persons": ListSpec("persons", "v2", filters=("owner_id", "org_id", "deal_id")),
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
    # Projects and tasks take no sort_by and no updated_since (spec): always by id.
    "projects": ListSpec(
        "projects",
        "v2",
        sorts=(),
        updated_since=False,
        updated_until=False,
        filters=("phase_id", "deal_id", "person_id", "org_id"),
    ),
    "projects/archived": ListSpec(
        "projects",
        "v2",
        sorts=(),
        updated_since=False,
        updated_until=False,
        filters=("phase_id",),
        view="archived",
    ),
    "tasks": ListSpec(
        "tasks",
        "v2",
        sorts=(),
        updated_since=False,
        updated_until=False,
        filters=("is_done", "is_milestone", "assignee_id", "project_id", "parent_task_id"),
    ),
    # Project boards and phases: no paging, sorting or filter but phases' board_id,
    # which the spec marks required; templates page by cursor.
    "boards": ListSpec("boards", "v2raw", sorts=(), updated_since=False, updated_until=False),
    "phases": ListSpec(
        "phases",
        "v2raw",
        sorts=(),
        updated_since=False,
        updated_until=False,
        filters=("board_id",),
        required=("board_id",),
    ),
    "projectTemplates": ListSpec(
        "projectTemplates", "v2", sorts=(), updated_since=False, updated_until=False
    ),
    "stages": ListSpec(
        "stages",
        "v2",
        sorts=("id", "update_time", "add_time", "order_nr"),
        updated_since=False,
        updated_until=False,
        filters=("pipeline_id",),
    ),
}
#: The fields `/v1/leads` and `/v1/leads/archived` sort by (the spec lists the same).
LEAD_SORTS = (
    "id",
    "title",
    "owner_id",
    "creator_id",
    "was_seen",
    "expected_close_date",
    "next_activity_id",
    "add_time",
    "update_time",
)

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
        sorts=LEAD_SORTS,
        updated_until=False,
        filters=("owner_id", "person_id", "organization_id"),
        since_kind="iso8601",
    ),
    # Archived leads: the spec lists no updated_since for this endpoint.
    "leads/archived": ListSpec(
        "leads",
        "v1",
        sorts=LEAD_SORTS,
        updated_since=False,
        updated_until=False,
        filters=("owner_id", "person_id", "organization_id"),
        view="archived",
    ),
    "users": ListSpec("users", "v1raw", updated_since=False, updated_until=False),
    # Files: sort by id or update_time, at most 100 a page, no update-time filter.
    "files": ListSpec(
        "files",
        "v1",
        sorts=("id", "update_time"),
        updated_since=False,
        updated_until=False,
        max_limit=FILES_MAX_LIMIT,
    ),
    "leadLabels": ListSpec("leadLabels", "v1raw", updated_since=False, updated_until=False),
    # Roles: offset paging; neither the schema nor the example shows `next_start`.
    "roles": ListSpec(
        "roles", "v1", sorts=("id",), updated_since=False, updated_until=False, next_start=False
    ),
    "permissionSets": ListSpec(
        "permissionSets", "v1raw", updated_since=False, updated_until=False, filters=("app",)
    ),
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
_IN_V1_AND_V2 = ("dealFields", "personFields", "organizationFields", "productFields",
                 "activityFields")  # fmt: skip
#: v2 field lists and their entity; projects' fields exist only in v2.
V2_FIELDS = {**{name: FIELD_ENTITIES[name] for name in _IN_V1_AND_V2}, "projectFields": "project"}
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
    "files": ("files", "v1"),
    "leadlabels": ("leadLabels", "v1"),
    "roles": ("roles", "v1"),
    "permissionsets": ("permissionSets", "v1"),
    "projects": ("projects", "v2"),
    "archivedprojects": ("projects/archived", "v2"),
    "projectsarchived": ("projects/archived", "v2"),
    "tasks": ("tasks", "v2"),
    "projectboards": ("boards", "v2"),
    "projectphases": ("phases", "v2"),
    "projecttemplates": ("projectTemplates", "v2"),
    "activitytypes": ("activityTypes", "v1"),
    "currencies": ("currencies", "v1"),
    "filters": ("filters", "v1"),
    **{k.lower(): (k, "fields") for k in FIELD_ENTITIES},
    **{k.lower(): (k, "fields_v2") for k in V2_FIELDS if k not in FIELD_ENTITIES},
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
    "files": "files",
    "mailthreads": "mailThreads",
    "projects": "projects",
    "tasks": "tasks",
    "leadlabels": "leadLabels",
}
# Streams whose truth is filtered by `since` by default although the API has no
# update-time filter: the tap filters them itself (files on update_time, read newest first
# down to the bookmark). Everything else without a server-side filter (projects, tasks,
# mail threads, users and the other reference tables) is read whole.
CLIENT_FILTERED = {"files"}
# Names of the derived streams truth() knows, normalised.
DERIVED_TRUTH = {
    "goals",
    "calllogs",
    "dealproducts",
    "dealparticipants",
    "dealflow",
    "mailthreads",
    "mailmessages",
    "recents",
}
#: Streams whose correct sync includes the deleted rows of their list: the tap asks for
#: them (`status=...,deleted`) and flags them. Their truth is asked `with_deleted`.
LISTED_WITH_DELETED = frozenset({"deals", "archived_deals", "projects", "archived_projects"})
DELETED_TABLES = {
    "deals": "deals",
    "persons": "persons",
    "organizations": "organizations",
    "products": "products",
    "activities": "activities",
    "notes": "notes",
    "files": "files",
    "mailthreads": "mailThreads",
    "projects": "projects",
    "users": "users",
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


def _limit(params: dict[str, str], default: int = DEFAULT_LIMIT) -> int:
    raw = params.get("limit")
    if raw in (None, ""):
        return default
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
        if endpoint == "deals/deleted":  # what /deals?status=deleted lists
            return bool(f & DELETED) and not f & ARCHIVED
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
        bounds = ("updated_since", "updated_until")
        if sort == [("update_time", False)] and any(params.get(b) for b in bounds):
            # Sorted by update time: the rows of an update-time range are a slice of the
            # whole sorted list, found by bisection (windows cost no table scan each).
            rows = self.select(
                endpoint, spec, {k: v for k, v in params.items() if k not in bounds}, sort
            )
            since, until = self._update_bounds(spec, params)
            lo = 0 if since is None else bisect.bisect_left(rows, since, key=lambda r: r[0])
            hi = len(rows) if until is None else bisect.bisect_left(rows, until, key=lambda r: r[0])
            return rows[lo:hi]
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

    @staticmethod
    def _update_bounds(spec: ListSpec, params: dict[str, str]) -> tuple[float | None, float | None]:
        """`updated_since` and `updated_until` as epoch seconds, where the endpoint takes them."""
        try:
            since = (
                parse_time(params["updated_since"])
                if spec.updated_since and params.get("updated_since")
                else None
            )
            until = (
                parse_time(params["updated_until"])
                if spec.updated_until and params.get("updated_until")
                else None
            )
        except ValueError as exc:
            raise ApiError(400, f"Validation failed: {exc}") from exc
        return since, until

    def _select(
        self, endpoint: str, spec: ListSpec, params: dict[str, str], sort: list[tuple[str, bool]]
    ) -> list[tuple[Any, Any, int]]:
        t = self.data.tables[spec.table]
        since, until = self._update_bounds(spec, params)
        try:
            start_date = parse_time(params["start_date"]) if params.get("start_date") else None
            end_date = parse_time(params["end_date"]) + 86400 if params.get("end_date") else None
        except ValueError as exc:
            raise ApiError(400, f"Validation failed: {exc}") from exc
        if spec.table != "notes":
            start_date = end_date = None
        wanted = {f: params[f] for f in spec.filters if params.get(f) not in (None, "")}
        ids_param = params.get("ids")
        id_set = {x.strip() for x in ids_param.split(",") if x.strip()} if ids_param else None
        if spec.table == "persons" and "deal_id" in wanted:
            # "persons linked to the specified deal": the deal's participants.
            di = self._int_param("deal_id", wanted.pop("deal_id")) - 1
            linked = (
                {str(p) for _, p in self.data.participant_persons(di)}
                if 0 <= di < len(self.data.tables["deals"])
                else set()
            )
            id_set = linked if id_set is None else id_set & linked
        status_set = None
        names: tuple[str, ...] = ()
        if spec.table in ("deals", "projects") and params.get("status"):
            names = STATUSES if spec.table == "deals" else PROJECT_STATUSES
            status_set = {s.strip() for s in params["status"].split(",") if s.strip()}
            bad = status_set - {*names, "deleted"}
            if bad:
                raise ApiError(400, f"Validation failed: status: invalid value {sorted(bad)}")
        with_deleted = spec.table == "files" and params.get("include_deleted_files") in (
            "1",
            "true",
        )
        out_idx = []
        for i in range(len(t)):
            if spec.table in ("deals", "projects") and endpoint != "deals/deleted":
                f = t.flags[i]
                if bool(f & ARCHIVED) != (spec.view == "archived"):
                    continue
                if status_set is not None:
                    st = "deleted" if f & DELETED else names[(f >> STATUS_SHIFT) & 3]
                    if st not in status_set:
                        continue
                elif f & DELETED:
                    continue
            elif with_deleted:
                pass
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
        elif spec.table == "phases":
            links = {"board_id": self.data.phase_board(i)}
        elif spec.table == "filters":
            links = {"type": self.data.render("filters", i, "v1")["type"]}
        elif spec.table == "permissionSets":
            links = {"app": PERMISSION_SETS[i][1]}
        else:
            links = self.data.links(spec.table, i)
        for k, v in wanted.items():
            have = links.get(k)
            if v.lower() == "null":
                if have is not None:
                    return False
                continue
            if isinstance(have, list):  # projects' deal_ids, tasks' assignee_ids, ...
                if v not in {str(x) for x in have}:
                    return False
                continue
            if isinstance(have, bool):
                have = "true" if have else "false"
                v = {"1": "true", "0": "false"}.get(v.lower(), v.lower())
            if str(have) != v:
                return False
        return True

    # ------------------------------------------------------------- list endpoints

    def list_v2(self, endpoint: str, params: dict[str, str]) -> tuple[dict[str, Any], bool]:
        spec = V2_LISTS[endpoint]
        missing = [name for name in spec.required if not params.get(name)]
        if missing:
            raise ApiError(400, f"Validation failed: {missing[0]}: is required")
        sort_by = params.get("sort_by") or "id"
        direction = (params.get("sort_direction") or "asc").lower()
        if not spec.sorts:  # no sort parameters in the spec: they are ignored
            sort_by, direction = "id", "asc"
        elif sort_by not in spec.sorts:
            raise ApiError(
                400, f"Validation failed: sort_by: must be one of {', '.join(spec.sorts)}"
            )
        if direction not in ("asc", "desc"):
            raise ApiError(400, "Validation failed: sort_direction: must be one of asc, desc")
        limit = _limit(params)
        include = self._include_fields(endpoint, params)
        for name, cap in (("ids", V2_IDS_MAX), ("custom_fields", V2_CUSTOM_FIELDS_MAX)):
            if len([x for x in params.get(name, "").split(",") if x.strip()]) > cap:
                raise ApiError(400, f"Validation failed: {name}: must contain at most {cap} items")
        filt = {
            k: v
            for k, v in params.items()
            if k
            not in (
                "cursor",
                "limit",
                "sort_by",
                "sort_direction",
                "include_fields",
                "include_option_labels",
                "include_labels",
                "custom_fields",
            )
        }
        # Rows come ascending by (key, id); desc pages walk them backwards (ties by id desc).
        rows = self.select(endpoint, spec, filt, [(sort_by, False)])
        if spec.api == "v2raw":  # one answer, all of it; `additional_data` null (spec)
            data = [self.data.render(spec.table, r[2], "v2") for r in rows]
            return {"success": True, "data": data, "additional_data": None}, bool(data)
        page_rows, nxt = self._cursor_page(rows, sort_by, direction, limit, params)
        opts = {
            "include_option_labels": params.get("include_option_labels", "").lower() == "true",
            "include_fields": include,
        }
        data = [self._v2_record(spec, r[2], opts, params) for r in page_rows]
        return {"success": True, "data": data, "additional_data": {"next_cursor": nxt}}, bool(data)

    @staticmethod
    def _cursor_page(
        rows: list[tuple[Any, Any, Any]],
        sort_by: str,
        direction: str,
        limit: int,
        params: dict[str, str],
    ) -> tuple[list[tuple[Any, Any, Any]], str | None]:
        """One page of rows sorted ascending by (key, id), and the next cursor."""
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
        nxt = None
        if more and page_rows:
            last = page_rows[-1]
            nxt = _encode_cursor(
                {"field": sort_by, "fieldValue": last[0], "sortDirection": direction, "id": last[1]}
            )
        return page_rows, nxt

    @staticmethod
    def _include_fields(endpoint: str, params: dict[str, str]) -> tuple[str, ...]:
        """`include_fields` checked against the spec's list for the endpoint."""
        raw = params.get("include_fields") or ""
        wanted = tuple(dict.fromkeys(x.strip() for x in raw.split(",") if x.strip()))
        if not wanted:
            return ()
        tpl = TEMPLATES.get("v2:" + endpoint.replace("/", "_")) or {}
        allowed = tpl.get("param_enums", {}).get("include_fields") or []
        bad = [x for x in wanted if x not in allowed]
        if bad:
            raise ApiError(
                400,
                f"Validation failed: include_fields: invalid value(s) {bad}; "
                f"allowed: {', '.join(allowed) or 'none'}",
            )
        return wanted

    @staticmethod
    def _int_param(name: str, raw: Any) -> int:
        try:
            return int(str(raw).strip())
        except ValueError as exc:
            raise ApiError(400, f"Validation failed: {name}: must be integer") from exc

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
        start, limit = self._start(params), min(_limit(params), spec.max_limit)
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
            addl = {"pagination": self._pagination(start, limit, more, spec.next_start)}
        return {"success": True, "data": data or None, "additional_data": addl}, bool(data)

    @staticmethod
    def _pagination(start: int, limit: int, more: bool, next_start: bool = True) -> dict[str, Any]:
        pag: dict[str, Any] = {"start": start, "limit": limit, "more_items_in_collection": more}
        if more and next_start:
            pag["next_start"] = start + limit
        return pag

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
        rows = self.data.fields_v2(V2_FIELDS[name])
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

    # ------------------------------------------------------------- second-batch endpoints

    def _offset_page(
        self, rows: list[Any], params: dict[str, str], max_limit: int = MAX_LIMIT
    ) -> tuple[list[Any], int, int, bool]:
        start = self._start(params)
        limit = min(_limit(params, default=min(DEFAULT_LIMIT, max_limit)), max_limit)
        return rows[start : start + limit], start, limit, start + limit < len(rows)

    def _deal_index(self, raw: str) -> int:
        did = self._int_param("id", raw)
        t = self.data.tables["deals"]
        if not 1 <= did <= len(t):
            raise ApiError(404, "Deal not found")
        return did - 1

    def goals(self, params: dict[str, str]) -> tuple[dict[str, Any], bool]:
        """/v1/goals/find: only the token user's goals unless a parameter that the spec
        marks "everyone's goals will be returned" (or assignee.id) is given; `is_active`
        defaults to true, so inactive goals need is_active=false."""
        enums = TEMPLATES["v1:goals"]["param_enums"]
        for name, allowed in enums.items():
            if params.get(name) not in (None, "") and params[name] not in allowed:
                raise ApiError(400, f"Validation failed: {name}: must be one of {allowed}")
        if ("period.start" in params) != ("period.end" in params):
            raise ApiError(400, "Validation failed: period.start and period.end go together")
        active_raw = (params.get("is_active") or "true").lower()
        if active_raw not in ("true", "false", "1", "0"):
            raise ApiError(400, "Validation failed: is_active: must be boolean")
        active = active_raw in ("true", "1")
        everyone = {
            "type.name",
            "assignee.id",
            "assignee.type",
            "expected_outcome.target",
            "expected_outcome.tracking_metric",
            "expected_outcome.currency_id",
            "type.params.pipeline_id",
            "type.params.stage_id",
            "type.params.activity_type_id",
        }
        rows = [g for g in self.data.goals if g["is_active"] == active]
        if not everyone & set(params):
            me = self.data.token_user
            rows = [g for g in rows if g["assignee"] == {"id": me, "type": "person"}]
        for key, want in params.items():
            if key in ("is_active", "period.start", "period.end") or want == "":
                continue
            rows = [g for g in rows if self._goal_match(g, key, want)]
        if "period.start" in params:
            try:
                lo, hi = (
                    day(parse_time(params["period.start"])),
                    day(parse_time(params["period.end"])),
                )
            except ValueError as exc:
                raise ApiError(400, f"Validation failed: {exc}") from exc
            rows = [g for g in rows if g["duration"]["start"] <= hi and g["duration"]["end"] >= lo]
        body = {
            "success": True,
            "statusCode": 20000,
            "statusText": "OK",
            "service": "statistics-goals-api",
            "data": {"goals": rows},
        }
        return body, bool(rows)

    @staticmethod
    def _goal_match(goal: dict[str, Any], key: str, want: str) -> bool:
        cur: Any = goal
        for part in key.split("."):
            if not isinstance(cur, dict) or part not in cur:
                return False  # unknown search field: nothing matches
            cur = cur[part]
        wants = {w.strip() for w in want.split(",")}
        if isinstance(cur, list):
            return bool(wants & {str(x) for x in cur})
        if cur is None:
            return "null" in wants
        return str(cur) in wants or (isinstance(cur, bool) and str(cur).lower() in wants)

    def call_logs(self, params: dict[str, str]) -> tuple[dict[str, Any], bool]:
        """/v1/callLogs: the token user's call logs (the API has no user filter), oldest
        first; at most 50 a page."""
        data = self.data
        t = data.tables["callLogs"]
        key = ("callLogs", self.version)
        with self.lock:
            rows = self._cache.get(key)
            if rows is None:
                mine = [i for i in range(len(t)) if data.call_user[i] == data.token_user]
                rows = sorted(mine, key=lambda i: (t.add[i], t.ids[i]))
                self._cache[key] = rows
        page, start, limit, more = self._offset_page(rows, params, CALL_LOGS_MAX_LIMIT)
        recs = [data.render("callLogs", i, "v1") for i in page]
        addl = {"pagination": self._pagination(start, limit, more)}
        return {"success": True, "data": recs or None, "additional_data": addl}, bool(recs)

    def _related(
        self, users: set[int], persons: set[int], orgs: set[int], deals: set[int]
    ) -> dict[str, Any]:
        data = self.data
        out: dict[str, Any] = {}
        if users:
            out["user"] = {str(u): data.user_ref(u) for u in sorted(users)}
        if persons:
            out["person"] = {}
            for p in sorted(persons):
                rec = data.render("persons", p - 1, "v2")
                out["person"][str(p)] = {
                    "active_flag": not rec["is_deleted"],
                    "id": p,
                    "name": rec["name"],
                    "email": rec["emails"],
                    "phone": rec["phones"],
                    "owner_id": rec["owner_id"],
                }
        if orgs:
            out["organization"] = {
                str(o): {**data._ref_v1("org", o), "id": o} for o in sorted(orgs)
            }
        if deals:
            out["deal"] = {}
            for d in sorted(deals):
                rec = data.render("deals", d - 1, "v2")
                out["deal"][str(d)] = {
                    k: rec[k]
                    for k in (
                        "id",
                        "title",
                        "status",
                        "value",
                        "currency",
                        "stage_id",
                        "pipeline_id",
                    )
                }
        return out

    def deal_participants(self, deal: str, params: dict[str, str]) -> tuple[dict[str, Any], bool]:
        di = self._deal_index(deal)
        with self.lock:
            rows = self.data.deal_participants(di)
        page, start, limit, more = self._offset_page(rows, params)
        persons = {r["person"]["id"] for r in page}
        users = {r["added_by_user_id"]["id"] for r in page} | {
            r["person"]["owner_id"]["value"] for r in page
        }
        orgs = {r["person"]["org_id"]["value"] for r in page if r["person"]["org_id"]}
        body = {
            "success": True,
            "data": page or None,
            "additional_data": {"pagination": self._pagination(start, limit, more, False)},
            "related_objects": self._related(users, persons, orgs, set()),
        }
        return body, bool(page)

    FLOW_ITEMS = {
        "call",
        "activity",
        "plannedActivity",
        "change",
        "note",
        "deal",
        "file",
        "dealChange",
        "personChange",
        "organizationChange",
        "follower",
        "dealFollower",
        "personFollower",
        "organizationFollower",
        "participant",
        "comment",
        "mailMessage",
        "mailMessageWithAttachment",
        "invoice",
        "document",
        "marketing_campaign_stat",
        "marketing_status_change",
    }

    def deal_flow(self, deal: str, params: dict[str, str]) -> tuple[dict[str, Any], bool]:
        """/v1/deals/{id}/flow: newest first, offset paging (the spec has start/limit, not a
        cursor); custom-field changes only with all_changes=1; `items` filters by kind."""
        di = self._deal_index(deal)
        all_changes = params.get("all_changes") in ("1", "true")
        kinds = {x.strip() for x in (params.get("items") or "").split(",") if x.strip()}
        if kinds - self.FLOW_ITEMS:
            raise ApiError(
                400, f"Validation failed: items: invalid {sorted(kinds - self.FLOW_ITEMS)}"
            )
        with self.lock:
            rows = self.data.deal_flow(di)
        rows = [
            e
            for e in rows
            if (all_changes or not e["_custom"]) and (not kinds or kinds & set(e["_kind"]))
        ]
        page, start, limit, more = self._offset_page(rows, params)
        data = [{k: v for k, v in e.items() if not k.startswith("_")} for e in page]
        users, persons, orgs = set(), set(), set()
        for e in data:
            d = e["data"]
            users.add(d.get("user_id"))
            if d.get("person_id"):
                persons.add(d["person_id"])
            if d.get("org_id"):
                orgs.add(d["org_id"])
        body = {
            "success": True,
            "data": data or None,
            "additional_data": {"pagination": self._pagination(start, limit, more, False)},
            "related_objects": self._related(
                {u for u in users if u}, persons, orgs, {di + 1} if data else set()
            ),
        }
        return body, bool(data)

    def mail_threads(self, params: dict[str, str]) -> tuple[dict[str, Any], bool]:
        """/v1/mailbox/mailThreads?folder=: a thread can sit in several folders (inbox and
        sent); newest message first. The spec documents no additional_data here: a client
        pages until a page comes back short."""
        folder = params.get("folder")
        if not folder:
            raise ApiError(400, "Validation failed: folder: is required")
        if folder not in MAIL_FOLDERS:
            raise ApiError(
                400, "Validation failed: folder: must be one of inbox, drafts, sent, archive"
            )
        t = self.data.tables["mailThreads"]
        key = ("mailThreads", folder, self.version)
        with self.lock:
            rows = self._cache.get(key)
            if rows is None:
                rows = [
                    i
                    for i in range(len(t))
                    if not t.flags[i] & DELETED
                    and folder in self.data.links("mailThreads", i)["folders"]
                ]
                rows.sort(key=lambda i: (t.upd[i], t.ids[i]), reverse=True)
                self._cache[key] = rows
        page, _, _, _ = self._offset_page(rows, params)
        recs = [self.data.render("mailThreads", i, "v1") for i in page]
        return {"success": True, "data": recs or None}, bool(recs)

    def mail_messages(self, thread: str, params: dict[str, str]) -> tuple[dict[str, Any], bool]:
        tid = self._int_param("id", thread)
        t = self.data.tables["mailThreads"]
        i = t.idx(tid)
        if i is None or t.flags[i] & DELETED:
            raise ApiError(404, "Mail thread not found")
        with self.lock:
            recs = self.data.mail_messages(i)
        return {"success": True, "data": recs}, bool(recs)

    def recents(self, params: dict[str, str]) -> tuple[dict[str, Any], bool]:
        """/v1/recents: changes since `since_timestamp` (UTC 'YYYY-MM-DD HH:MM:SS'), but
        never more than one month back from now; deleted records included (v1 shapes
        with active_flag false / deleted true); oldest first."""
        ts = params.get("since_timestamp")
        if not ts:
            raise ApiError(400, "Validation failed: since_timestamp: is required")
        if not _V1_TS_RE.match(ts):
            raise ApiError(400, "Validation failed: since_timestamp: format YYYY-MM-DD HH:MM:SS")
        allowed = TEMPLATES["v1:recents"]["param_enums"]["items"]
        items = [x.strip() for x in (params.get("items") or "").split(",") if x.strip()]
        bad = [x for x in items if x not in allowed]
        if bad:
            raise ApiError(400, f"Validation failed: items: invalid value(s) {bad}")
        with self.lock:
            rows = self.recent_rows(parse_time(ts), items or allowed)
            page, start, limit, more = self._offset_page(rows, params)
            data = [
                {"item": item, "id": rid, "data": self.data.recent_data(item, i)}
                for _, _, rid, item, i in page
            ]
        addl = {
            "since_timestamp": ts,
            "last_timestamp_on_page": v1_ts(page[-1][0]) if page else None,
            "pagination": self._pagination(start, limit, more, False),
        }
        return {"success": True, "data": data or None, "additional_data": addl}, bool(data)

    def recent_rows(self, since: float, items: list[str]) -> list[tuple[int, int, Any, str, int]]:
        """(update time, item order, id, item, index) of every record /v1/recents shows."""
        floor = max(since, self._now() - RECENTS_WINDOW_S)
        order = list(self.data.RECENT_ITEMS)
        rows = []
        for item in items:
            t = self.data.tables[self.data.RECENT_ITEMS[item]]
            k = order.index(item)
            rows += [(u, k, t.ids[i], item, i) for i, u in enumerate(t.upd) if u >= floor]
        rows.sort(key=lambda r: (r[0], r[1], r[2]))
        return rows

    DEAL_PRODUCT_SORTS = ("id", "deal_id", "add_time", "update_time", "order_nr")

    def deal_products(
        self, params: dict[str, str], deal: str | None = None
    ) -> tuple[dict[str, Any], bool]:
        """/api/v2/deals/products?deal_ids= (at most 100) and /api/v2/deals/{id}/products."""
        if deal is None:
            raw = params.get("deal_ids") or params.get("deal_ids[]") or ""
            parts = [x.strip() for x in raw.split(",") if x.strip()]
            if not parts:
                raise ApiError(400, "Validation failed: deal_ids: is required")
            if len(parts) > DEAL_IDS_MAX:
                raise ApiError(
                    400, f"Validation failed: deal_ids: must contain at most {DEAL_IDS_MAX} items"
                )
            dids = sorted({self._int_param("deal_ids", x) for x in parts})
            sorts = self.DEAL_PRODUCT_SORTS
        else:
            dids = [self._deal_index(deal) + 1]
            sorts = tuple(x for x in self.DEAL_PRODUCT_SORTS if x != "deal_id")
        sort_by = params.get("sort_by") or "id"
        direction = (params.get("sort_direction") or "asc").lower()
        if sort_by not in sorts:
            raise ApiError(400, f"Validation failed: sort_by: must be one of {', '.join(sorts)}")
        if direction not in ("asc", "desc"):
            raise ApiError(400, "Validation failed: sort_direction: must be one of asc, desc")
        limit = _limit(params)
        t = self.data.tables["deals"]
        recs = []
        with self.lock:
            for did in dids:
                if 1 <= did <= len(t) and not t.flags[did - 1] & DELETED:
                    recs += self.data.deal_products(did - 1)
        rows = sorted(((r[sort_by], r["id"], r) for r in recs), key=lambda x: (x[0], x[1]))
        page_rows, nxt = self._cursor_page(rows, sort_by, direction, limit, params)
        data = [r[2] for r in page_rows]
        return {"success": True, "data": data, "additional_data": {"next_cursor": nxt}}, bool(data)

    # ------------------------------------------------------------- truth and mutation

    def truth(
        self,
        stream: str,
        since: Any = None,
        incremental: bool | None = None,
        with_deleted: bool = False,
    ) -> set[Any]:
        norm = _norm(stream)
        if norm in DERIVED_TRUTH:
            return self._derived_truth(norm, since, incremental)
        if norm not in TRUTH_STREAMS:
            known = sorted({*TRUTH_STREAMS, *DERIVED_TRUTH})
            raise KeyError(f"unknown stream {stream!r}; known: {known}")
        endpoint, api = TRUTH_STREAMS[norm]
        if api == "fields":
            return {row["id"] for row in self.data.fields_v1(FIELD_ENTITIES[endpoint])}
        if api == "fields_v2":  # keyed by field_code: v2 field definitions have no id
            return {row["field_code"] for row in self.data.fields_v2(V2_FIELDS[endpoint])}
        if endpoint == "deals/deleted":
            spec = V2_LISTS["deals"]
        else:
            spec = V2_LISTS.get(endpoint) or V1_LISTS[endpoint]
        t = self.data.tables[spec.table]
        # Users have no server-side filter, but a correct sync emits only those whose
        # `modified` (their update time here) is at or after `since`.
        if incremental is None:
            incremental = (
                spec.updated_since
                or endpoint in ("deals/archived", "deals/deleted", "leads/archived")
                or norm in CLIENT_FILTERED
            )
        s = parse_time(since) if since is not None and incremental else None
        view_only = with_deleted and spec.table in ("deals", "projects") and norm != "dealsdeleted"
        with self.lock:
            return {
                t.ids[i]
                for i in range(len(t))
                if (
                    # with_deleted: as with status=open,...,deleted (deleted rows of the view)
                    bool(t.flags[i] & ARCHIVED) == (spec.view == "archived")
                    if view_only
                    else self._visible(spec, endpoint, i)
                )
                and (s is None or t.upd[i] >= s)
            }

    def _derived_truth(self, norm: str, since: Any, incremental: bool | None) -> set[Any]:
        """Truth of the streams that are not one list endpoint over one table."""
        data = self.data
        s = parse_time(since) if since is not None and incremental is not False else None
        whole = parse_time(since) if since is not None and incremental else None
        with self.lock:
            if norm == "goals":  # every user's goals, active or not; no update time
                return {g["id"] for g in data.goals}
            if norm == "calllogs":  # the API only ever lists the token user's
                t = data.tables["callLogs"]
                return {t.ids[i] for i in range(len(t)) if data.call_user[i] == data.token_user}
            if norm == "recents":  # (item, id) pairs /v1/recents returns since `since`
                floor = s if s is not None else 0
                return {(r[3], r[2]) for r in self.recent_rows(floor, list(data.RECENT_ITEMS))}
            if norm in ("mailthreads", "mailmessages"):
                t = data.tables["mailThreads"]
                threads = [  # read whole unless incremental=True
                    i
                    for i in range(len(t))
                    if not t.flags[i] & DELETED and (whole is None or t.upd[i] >= whole)
                ]
                if norm == "mailthreads":
                    return {t.ids[i] for i in threads}
                return {
                    m for i in threads for m in range(data.msg_off[i] + 1, data.msg_off[i + 1] + 1)
                }
            # Deal children: everything under the deals that a sync of `deals` and of
            # `archived_deals` from `since` yields (the tap fetches children only for
            # deals changed since).
            deals = sorted(
                self.truth("deals", since, incremental)
                | self.truth("archived_deals", since, incremental)
            )
            if norm == "dealproducts":
                return {
                    dp for d in deals for dp in range(data.dp_off[d - 1] + 1, data.dp_off[d] + 1)
                }
            if norm == "dealparticipants":
                return {pid for d in deals for pid, _ in data.participant_persons(d - 1)}
            # deal flow: (deal id, object, data.id), with custom-field changes (all_changes=1)
            return {(d, e["object"], e["data"]["id"]) for d in deals for e in data.deal_flow(d - 1)}

    def deleted(self, stream: str, since: Any = None) -> set[Any]:
        """Ids of soft-deleted records of `stream` (deleted at or after `since`)."""
        norm = _norm(stream)
        if norm not in DELETED_TABLES:
            raise KeyError(f"no deleted records for {stream!r}; known: {sorted(DELETED_TABLES)}")
        t = self.data.tables[DELETED_TABLES[norm]]
        s = parse_time(since) if since is not None else None
        with self.lock:
            return {
                t.ids[i]
                for i in range(len(t))
                if t.flags[i] & DELETED and (s is None or t.upd[i] >= s)
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
            if self.data.render_cache is not None:
                self.data.render_cache.clear()
            t = self._table_for(stream)
            if ids is not None:
                idx = [t.idx(x) for x in ids]
                missing = [x for x, i in zip(ids, idx, strict=True) if i is None]
                if missing:
                    raise KeyError(f"unknown ids for {stream}: {missing[:5]}")
            else:
                # Rows of the default list: not deleted, not archived.
                live = [i for i in range(len(t)) if not t.flags[i] & (DELETED | ARCHIVED)]
                self._touch_round += 1
                r = random.Random(f"{self.data.seed}|touch|{stream}|{self._touch_round}")
                idx = r.sample(live, min(n if n is not None else 1, len(live)))
            now = self._now()
            for i in idx:
                assert i is not None
                t.upd[i] = now
                t.rev[i] = t.rev.get(i, 0) + 1
                t.touch_log.setdefault(i, []).append(now)
            t.version += 1
            self.version += 1
            return [t.ids[i] for i in idx if i is not None]

    def delete(self, stream: str, ids: list[Any]) -> list[Any]:
        """Soft-delete like Pipedrive: deals stay visible with status=deleted for 30 days."""
        with self.lock:
            if self.data.render_cache is not None:
                self.data.render_cache.clear()
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
_HTML_BLOCKED = (
    "<!DOCTYPE html><html><head><title>Attention Required! | Cloudflare</title></head>"
    "<body><h1>Sorry, you have been blocked</h1><h2>Access denied</h2>"
    "<p>Error 1020: you are unable to access api.pipedrive.com</p>"
    "<p>This website is using a security service to protect itself from online attacks.</p>"
    "</body></html>"
)
_HTML_PROXY_200 = (
    "<html><head><title>502 Bad Gateway</title></head>"
    "<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"
)


def _rate_limit_headers(faults: Faults, limit: int) -> dict[str, str]:
    """Headers of the rate_limit_every 429, as faults.rate_limit_headers asks."""
    mode = faults.rate_limit_headers
    hdrs: dict[str, str] = {}
    if mode in ("all", "ratelimit"):
        hdrs = {
            "x-ratelimit-limit": str(limit),
            "x-ratelimit-remaining": "0",
            # "all" keeps the burst window's 2 s (as before); "ratelimit" says 1 s.
            "x-ratelimit-reset": str(int(BURST_WINDOW_S)) if mode == "all" else "1",
        }
    if mode in ("all", "retry-after"):
        hdrs["Retry-After"] = "1"
    return hdrs


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
        self,
        status: int,
        payload: Any,
        extra: dict[str, str] | None = None,
        truncate: bool = False,
        trickle: bool = False,
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
        if trickle:
            try:
                for at in range(len(body)):
                    self.wfile.write(body[at : at + 1])
                    self.wfile.flush()
                    time.sleep(0.25)
            except OSError:  # the client gave up on it
                self.close_connection = True
            return
        self.wfile.write(body)

    def _dispatch(self, method: str) -> None:
        sb = self.server.sandbox
        parts = urlsplit(self.path)
        path = parts.path
        params: dict[str, str] = {}
        for k, v in parse_qsl(parts.query, keep_blank_values=True):
            # Repeated keys (deal_ids=1&deal_ids=2, form style explode=true) join like
            # the comma-separated form the spec declares (explode=false).
            params[k] = f"{params[k]},{v}" if k in params else v
        body = self._body()
        if path == "/_sandbox" or path.startswith("/_sandbox/"):
            try:
                status, payload = sb._control(method, path, params, body)
            except (KeyError, ValueError, TypeError) as exc:
                status, payload = 400, {"success": False, "error": str(exc)}
            self._send(status, payload)
            return
        sb._record(method, path, params, dict(self.headers.items()))
        n, faults = sb._count_api()
        if (
            faults.stall_every
            and n % faults.stall_every == 0
            and path.startswith(faults.stall_path)
        ):
            time.sleep(faults.stall_seconds)
        if faults.drop_every and n % faults.drop_every == 0:
            # Hang up without a status line: the client sees RemoteDisconnected.
            self.close_connection = True
            return
        if faults.latency_ms:
            time.sleep(faults.latency_ms / 1000)
        if faults.block_after and n > faults.block_after:
            # The CDN's abuse block: HTML, not Pipedrive's JSON envelope, before any auth.
            self._send(403, _HTML_BLOCKED)
            return
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
        if faults.budget_exhausted_after and n > faults.budget_exhausted_after:
            # The company's daily token budget is spent: 429 until the reset, hours away.
            daily = {
                "x-ratelimit-limit": str(limit),
                "x-ratelimit-remaining": "0",
                "x-ratelimit-reset": str(DAILY_RESET_S),
                "Retry-After": str(DAILY_RESET_S),
            }
            self._send(429, _envelope("Request over limit", 429), daily)
            return
        refused = faults.refused.get(path)
        if refused:
            reason = {403: "You do not have access to this feature", 404: "Unknown method ."}
            self._send(refused, _envelope(reason.get(refused, "Gone"), refused), rl)
            return
        fault = sb._next_fault(n, faults)
        if fault == 429:
            self._send(
                429, _envelope("Request over limit", 429), _rate_limit_headers(faults, limit)
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
        if has_data and sb._take_once("non_json_once"):
            # A proxy's error page served with 200: complete, but not JSON.
            self._send(200, _HTML_PROXY_200, rl)
            return
        truncate = has_data and sb._take_once("truncate_once")
        trickle = has_data and not truncate and sb._take_once("trickle_once")
        self._send(200, payload, rl, truncate=truncate, trickle=trickle)


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
        render_cache: bool = False,
        bulk_edit: int = 0,
    ) -> None:
        self.seed, self.scale, self.token, self.host, self.port = seed, scale, token, host, port
        self.faults = faults or Faults()
        self.data = Dataset(seed, scale, bulk_edit)
        if render_cache:
            self.data.render_cache = {}
        self.engine = Engine(self.data)
        self.requests: list[tuple[str, str, dict[str, str], dict[str, str]]] = []
        self.request_times: list[float] = []  # arrival (monotonic) of each of `requests`
        self._lock = threading.Lock()
        self._fault_n = 0
        self._error_n = 0
        self._burst: collections.deque[float] = collections.deque()
        self._once_taken: set[str] = set()  # truncate_once / non_json_once spent
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

    def truth(
        self,
        stream: str,
        since: datetime | str | None = None,
        incremental: bool | None = None,
        with_deleted: bool = False,
    ) -> set[Any]:
        """Primary keys a correct sync of `stream` from `since` must yield.

        `with_deleted` (`LISTED_WITH_DELETED`): also the deleted rows of that
        list, as `status=open,won,lost,deleted` returns them.

        `incremental` overrides whether `since` filters the stream (None: the default per
        stream; see the module docs). Deal children (deal_products, deal_participants,
        deal_flow) follow the deals a sync of `deals` and `archived_deals` from `since`
        yields; mail_messages
        follow mail_threads; deal_flow keys are (deal_id, object, data.id) tuples."""
        return self.engine.truth(stream, since, incremental, with_deleted)

    def deleted(self, stream: str, since: datetime | str | None = None) -> set[Any]:
        """Ids of the records of `stream` that are soft-deleted (for `_sdc_deleted_at`)."""
        return self.engine.deleted(stream, since)

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
            self.request_times.clear()

    def set_faults(self, **kw: Any) -> Faults:
        """Change faults at run time; setting truncate_once / non_json_once=True arms it again.

        Every call restarts the API request count the counter-based faults use."""
        names = {f.name for f in dataclasses.fields(Faults)}
        unknown = set(kw) - names
        if unknown:
            raise TypeError(f"unknown fault(s): {sorted(unknown)}")
        with self._lock:
            self.faults = dataclasses.replace(self.faults, **kw)
            for once in ("truncate_once", "non_json_once", "trickle_once"):
                if kw.get(once):
                    self._once_taken.discard(once)  # re-armed
            self._fault_n = 0
        return self.faults

    # ------------------------------------------------------------- internals used by Handler

    def _record(
        self, method: str, path: str, params: dict[str, str], headers: dict[str, str]
    ) -> None:
        with self._lock:
            self.requests.append((method, path, params, headers))
            self.request_times.append(time.monotonic())

    def _burst_tick(self) -> tuple[int, int]:
        now = time.monotonic()
        with self._lock:
            self._burst.append(now)
            while self._burst and self._burst[0] <= now - BURST_WINDOW_S:
                self._burst.popleft()
            return len(self._burst), self.faults.burst_limit or DEFAULT_BURST_HEADER_LIMIT

    def _count_api(self) -> tuple[int, Faults]:
        """Number this API request (from 1 since the last set_faults) with the faults now."""
        with self._lock:
            self._fault_n += 1
            return self._fault_n, self.faults

    def _next_fault(self, n: int, f: Faults) -> int:
        """429 or a 5xx code if API request `n` is due one, else 0."""
        if f.rate_limit_every and n % f.rate_limit_every == 0:
            return 429
        if f.server_error_every and n % f.server_error_every == 0:
            with self._lock:
                code = SERVER_ERROR_CYCLE[self._error_n % len(SERVER_ERROR_CYCLE)]
                self._error_n += 1
            return code
        return 0

    def _take_once(self, name: str) -> bool:
        """True the first time a one-shot fault (truncate_once, non_json_once) applies."""
        with self._lock:
            if getattr(self.faults, name) and name not in self._once_taken:
                self._once_taken.add(name)
                return True
            return False

    def _route(self, path: str, params: dict[str, str]) -> tuple[dict[str, Any], bool]:
        path = path.rstrip("/")
        eng = self.engine
        if path.startswith("/api/v2/"):
            name = path[len("/api/v2/") :]
            if name in V2_LISTS:
                return eng.list_v2(name, params)
            if name in V2_FIELDS:
                return eng.fields_v2(name, params)
            if name == "deals/products":
                return eng.deal_products(params)
            m = re.fullmatch(r"deals/([^/]+)/products", name)
            if m:
                return eng.deal_products(params, m.group(1))
        else:
            for prefix in ("/api/v1/", "/v1/"):
                if path.startswith(prefix):
                    name = path[len(prefix) :]
                    if name in V1_LISTS:
                        return eng.list_v1(name, params)
                    if name in FIELD_ENTITIES:
                        return eng.fields_v1(name, params)
                    simple = {
                        "goals/find": eng.goals,
                        "callLogs": eng.call_logs,
                        "mailbox/mailThreads": eng.mail_threads,
                        "recents": eng.recents,
                    }.get(name)
                    if simple is not None:
                        return simple(params)
                    m = re.fullmatch(r"deals/([^/]+)/(participants|flow)", name)
                    if m:
                        handler = (
                            eng.deal_participants if m.group(2) == "participants" else eng.deal_flow
                        )
                        return handler(m.group(1), params)
                    m = re.fullmatch(r"mailbox/mailThreads/([^/]+)/mailMessages", name)
                    if m:
                        return eng.mail_messages(m.group(1), params)
                    break
        raise ApiError(404, f"Unknown method {path}")

    def _control(
        self, method: str, path: str, params: dict[str, str], body: bytes
    ) -> tuple[int, Any]:
        doc = json.loads(body) if body.strip() else {}
        if path == "/_sandbox/truth" and method == "GET":
            stream = params["stream"]
            inc = params.get("incremental")
            incremental = None if inc in (None, "") else inc.lower() in ("1", "true")
            with_deleted = (params.get("with_deleted") or "").lower() in ("1", "true")
            ids = self.truth(stream, params.get("since") or None, incremental, with_deleted)
            return 200, {"stream": stream, "ids": sorted(ids, key=str)}
        if path == "/_sandbox/deleted" and method == "GET":
            stream = params["stream"]
            ids = self.deleted(stream, params.get("since") or None)
            return 200, {"stream": stream, "ids": sorted(ids, key=str)}
        if path == "/_sandbox/touch" and method == "POST":
            return 200, {"ids": self.touch(doc["stream"], doc.get("n"), doc.get("ids"))}
        if path == "/_sandbox/delete" and method == "POST":
            return 200, {"ids": self.delete(doc["stream"], doc["ids"])}
        if path == "/_sandbox/requests" and method == "GET":
            with self._lock:
                by_path = collections.Counter(r[1] for r in self.requests)
                answer: dict[str, Any] = {"count": len(self.requests), "by_path": dict(by_path)}
                if params.get("timeline") and self.request_times:
                    # when each request arrived, in seconds after the first, and its path
                    first = self.request_times[0]
                    answer["timeline"] = [
                        [round(at - first, 4), r[1]]
                        for at, r in zip(self.request_times, self.requests, strict=True)
                    ]
                return 200, answer
        if path == "/_sandbox/reset_requests" and method == "POST":
            self.reset_requests()
            return 200, {"count": 0}
        if path == "/_sandbox/faults" and method in ("POST", "GET"):
            faults = self.set_faults(**doc) if method == "POST" else self.faults
            return 200, dataclasses.asdict(faults)
        return 404, {"success": False, "error": f"unknown sandbox route {method} {path}"}


__all__ = ["Faults", "Sandbox", "day", "parse_time"]
