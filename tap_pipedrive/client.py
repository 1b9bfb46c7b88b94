"""Base streams for Pipedrive's two APIs: auth, paging, errors and retries, written once.

`PipedriveV1Stream` pages with `start`/`limit` (offset), `PipedriveV2Stream` with `cursor`.
Both send the API token only in the `x-api-token` header, ask for the largest page the
endpoint allows, retry what is transient (429, 5xx, timeouts, dropped connections, bodies
that are not JSON) and stop with one clear line on what is not (401, 402, the 403 block
page, ...). A list refused at its first page (403, 404, 410: a feature the account lacks)
skips its stream, not the run.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import email.utils
import json
import logging
import math
import re
import socket
import sys
import threading
import time
import typing as t
from collections import deque
from dataclasses import dataclass
from functools import cached_property
from http import HTTPStatus

import requests
import urllib3
from singer_sdk import RESTStream, SchemaDirectory, StreamSchema
from singer_sdk.exceptions import (
    AbortedSyncFailedException,
    AbortedSyncPausedException,
    InvalidStreamSortException,
    MaxRecordsLimitException,
    RetriableAPIError,
)
from singer_sdk.helpers._catalog import get_selected_schema, pop_deselected_record_properties
from singer_sdk.helpers._state import PROGRESS_MARKER_NOTE, PROGRESS_MARKERS, STARTING_MARKER
from singer_sdk.mapper import SameRecordTransform
from singer_sdk.pagination import BaseAPIPaginator, SinglePagePaginator
from singer_sdk.singerlib import Metadata, MetadataMapping, RecordMessage

from tap_pipedrive import schemas
from tap_pipedrive.budget import TokenCapReached, token_cost
from tap_pipedrive.conform import Conformer
from tap_pipedrive.custom_fields import CustomFieldLayout
from tap_pipedrive.errors import (
    AccessError,
    ApiError,
    AuthError,
    ConfigError,
    ConnectionFailed,
    NotFoundError,
    PipedriveError,
    RateLimitError,
    RunHalted,
    UnavailableError,
)
from tap_pipedrive.pipeline import (
    PAGES_WAITING,
    SPARE_ON_WIRE,
    PageChain,
    ReadAhead,
    TimeWindows,
    Window,
    split_overflow,
    windows_to_start,
)
from tap_pipedrive.recents import CLOCK_MARGIN, reach_floor
from tap_pipedrive.timeutil import (
    UTC,
    format_datetime,
    parse_datetime,
    to_query_timestamp,
    to_rfc3339,
)

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

DEFAULT_HOST = "https://api.pipedrive.com"
MAX_PAGE_SIZE = 500
_PAYLOAD_ATTR = "_pipedrive_payload"
#: Pages of a list read in sequence fetched before its turn (see `head_chain`).
SEQUENCE_AHEAD = 4
_COMPANY_DOMAIN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")

SCHEMAS = SchemaDirectory(schemas)
#: Reason phrases, including Cloudflare's 52x that Pipedrive answers with at times.
_REASONS = {status.value: status.phrase for status in HTTPStatus} | {
    520: "Unknown Error",
    521: "Web Server Is Down",
    522: "Connection Timed Out",
    523: "Origin Is Unreachable",
    524: "A Timeout Occurred",
}


def api_roots(config: t.Mapping[str, t.Any]) -> tuple[str, str]:
    """Return the (v1, v2) base URLs for the configured `api_url` or `company_domain`.

    `api_url` takes both of Pipedrive's forms: a host (`https://api.pipedrive.com`: v1 under
    `/v1`, v2 under `/api/v2`) or a company API root (`https://acme.pipedrive.com/api`: v1
    under `/api/v1`, v2 under `/api/v2`). `company_domain` `acme` means the latter for
    `https://acme.pipedrive.com`, which Pipedrive recommends because it routes to the
    company's data centre.
    """
    api_url = (config.get("api_url") or "").strip()
    domain = (config.get("company_domain") or "").strip().lower()
    if domain:
        domain = re.sub(r"^https?://", "", domain).rstrip("/").removesuffix(".pipedrive.com")
        if not _COMPANY_DOMAIN.match(domain):
            raise ConfigError(
                f"company_domain {config.get('company_domain')!r} is not a Pipedrive company "
                "domain: give the part before .pipedrive.com, e.g. 'acme'"
            )
    if api_url:
        parsed = requests.utils.urlparse(api_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ConfigError(
                f"api_url {api_url!r} is not an http(s) URL such as https://api.pipedrive.com"
            )
        if parsed.query or parsed.fragment or "@" in parsed.netloc:
            raise ConfigError("api_url must be a plain base URL, without query or credentials")
        base = api_url.rstrip("/")
        for suffix in ("/v1", "/api/v2", "/api/v1", "/v2"):
            if base.endswith(suffix):
                base = base[: -len(suffix)] + ("/api" if suffix.startswith("/api") else "")
                break
        if base.endswith("/api"):
            return f"{base}/v1", f"{base}/v2"
        return f"{base}/v1", f"{base}/api/v2"
    if domain:
        base = f"https://{domain}.pipedrive.com/api"
        return f"{base}/v1", f"{base}/v2"
    return f"{DEFAULT_HOST}/v1", f"{DEFAULT_HOST}/api/v2"


def utc_now_text() -> str:
    return format_datetime(dt.datetime.now(UTC).replace(microsecond=0))


def payload_of(response: requests.Response) -> dict[str, t.Any]:
    """The response's JSON body, parsed once and cached on the response.

    Paging and record parsing both read the body; parsing it twice would double the
    tap's largest per-page cost. (The standard library's parser, not msgspec's: msgspec
    parses a page of 500 deals in two thirds of the time but shares no dict keys between
    records, and the page then holds 2.8 MB in memory instead of 2.0 MB.)
    """
    payload = getattr(response, _PAYLOAD_ATTR, None)
    if payload is None:
        payload = json.loads(response.content)
        setattr(response, _PAYLOAD_ATTR, payload)
        # The body is read from the payload from now on: drop the bytes, which would
        # otherwise double what a page held in flight costs in memory.
        response._content = b""
    return payload


def compact_payload(response: requests.Response) -> None:
    """Keep a page that waits for its turn as JSON text, parsed again when it is read: a
    page of 500 records parsed holds three to four times its text, and a stream's first
    page, fetched ahead, may wait for most of the run."""
    payload = getattr(response, _PAYLOAD_ATTR, None)
    if payload is not None:
        response._content = json.dumps(payload, separators=(",", ":")).encode()
        delattr(response, _PAYLOAD_ATTR)


#: Refused connections, with nothing answered yet, retried this long before the run stops.
REFUSED_GIVE_UP_SECONDS = 10.0


def no_such_host(exc: BaseException) -> bool:
    """Whether a connection failed because the host name does not exist (DNS: no such
    name), not because a resolver or the network failed for now."""
    cause = _cause_of_type(exc, socket.gaierror)
    return cause is not None and cause.errno == socket.EAI_NONAME


def never_sent(exc: BaseException) -> bool:
    """Whether a request failed before it reached a server (no connection made: refused,
    no such host, connect timeout), so that no budget paid for it."""
    return any(
        _cause_of_type(exc, kind) is not None
        for kind in (
            urllib3.exceptions.ConnectTimeoutError,
            ConnectionRefusedError,
            socket.gaierror,
        )
    )


def connection_refused(exc: BaseException) -> bool:
    """Whether a connection failed because nothing listens at the host's port."""
    return _cause_of_type(exc, ConnectionRefusedError) is not None


E = t.TypeVar("E", bound=BaseException)


def _cause_of_type(exc: BaseException, kind: type[E]) -> E | None:
    """The first error of `kind` among `exc`, its causes, contexts and wrapped errors
    (`requests` wraps urllib3's, which wraps the socket's)."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        error = pending.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, kind):
            return error
        reason = getattr(error, "reason", None)
        pending += [
            error.__cause__,
            error.__context__,
            reason if isinstance(reason, BaseException) else None,
        ]
        pending += [arg for arg in error.args if isinstance(arg, BaseException)]
    return None


def _header_seconds(response: requests.Response, name: str) -> float | None:
    """A header holding seconds (or, for Retry-After, an HTTP date), as seconds from now."""
    raw = response.headers.get(name)
    if raw is None:
        return None
    try:
        return max(float(raw), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def rate_limit_wait(response: requests.Response) -> float | None:
    """How long Pipedrive asks us to wait: `Retry-After`, else `x-ratelimit-reset`."""
    wait = _header_seconds(response, "Retry-After")
    if wait is None:
        wait = _header_seconds(response, "x-ratelimit-reset")
    return wait


class _PipedrivePaginator(BaseAPIPaginator[t.Any]):
    """Shared stop rule: a page's body says whether another page follows."""

    def get_next(self, response: requests.Response) -> t.Any:
        additional = payload_of(response).get("additional_data") or {}
        return self.next_token(additional)

    def next_token(self, additional: dict[str, t.Any]) -> t.Any:
        raise NotImplementedError

    def resume_at(self, token: t.Any) -> None:
        """Continue as if the page `token` names had just been requested."""
        self._value = token


class OffsetPaginator(_PipedrivePaginator):
    """v1: `start` offsets while `more_items_in_collection` says more items exist.

    Most endpoints nest it as `additional_data.pagination` with `next_start`; leads put
    `start`, `limit`, `more_items_in_collection` flat in `additional_data`, without
    `next_start`, so the next offset is then `start + limit`.
    """

    def __init__(self, page_size: int) -> None:
        super().__init__(0)
        self.page_size = page_size

    def get_next(self, response: requests.Response) -> int | None:
        payload = payload_of(response)
        additional = payload.get("additional_data") or {}
        if "pagination" not in additional and "more_items_in_collection" not in additional:
            # Some lists (mail threads) document no paging data: a full page means more.
            records = payload.get("data") or []
            full = len(records) >= self.page_size
            return (self.current_value or 0) + len(records) if full else None
        return self.next_token(additional)

    def next_token(self, additional: dict[str, t.Any]) -> int | None:
        pagination = additional.get("pagination") or additional
        if not pagination.get("more_items_in_collection"):
            return None
        next_start = pagination.get("next_start")
        if next_start is None:
            start = pagination.get("start")
            start = self.current_value if start is None else int(start)
            next_start = start + int(pagination.get("limit") or self.page_size)
        return int(next_start) or None


class UpdateTimePaginator(OffsetPaginator):
    """v1 lists sorted by update time: each page restarts the filter at the last update time.

    Deep `start` offsets lose records when the account changes mid-sync: a record updated
    while we page moves to the end, every later record shifts back by one, and the record
    that slides over the current offset is never read (and the final bookmark passes it).
    Here the token is `(updated_since, start)`: the next page asks for records updated at or
    after the last record's second, skipping only the ones of that same second already
    read. An update mid-sync can then only shift records within one second's tie group.

    That shift is caught too: each next page overlaps the last by one record, expected
    to be the last one read. If another comes first, records of the tie group were edited
    or deleted since (moved out of it), and the offset would pass over an unread one: the
    page is dropped and the second read again from its start, without the records of it
    already read. The overlap record itself is dropped from every page.
    """

    def __init__(self, page_size: int, replication_key: str, since: str | None) -> None:
        super().__init__(page_size)
        self._value = None
        self.replication_key = replication_key
        self.since = since
        #: The id the page asked for should begin with (the last record read), if any.
        self._expected: t.Any = None
        #: Ids of the records of the token's second already read.
        self._seen: set[t.Any] = set()

    def get_next(self, response: requests.Response) -> tuple[str | None, int] | None:
        """The next token, from the page as answered; the page's `data` is left with the
        records to emit (without the overlap record and those of the second already read).
        """
        payload = payload_of(response)
        additional = payload.get("additional_data") or {}
        page = payload.get("data") or []
        asked = self.current_value or (self.since, 0)
        since, start = asked
        expected, self._expected = self._expected, None
        if expected is not None:
            if page and page[0].get("id") == expected:
                page, start = page[1:], start + 1  # `page` begins at offset `start`
            elif start > 0:  # the tie group moved: read its second again, from its start
                payload["data"] = []
                return since, 0
        seconds = [_second_of(record.get(self.replication_key)) for record in page]
        if expected is not None or self._seen:
            # Only a paginator that has read pages changes one. A new one asked where a
            # list ends (from another thread, for a page read ahead) leaves it as it is:
            # its reader may be dropping the overlap record from it at this moment.
            payload["data"] = [
                row
                for row, second in zip(page, seconds, strict=True)
                if second != since or row.get("id") not in self._seen
            ]
        if super().next_token(additional) is None:
            return None
        if not seconds or None in seconds or seconds != sorted(seconds):
            # Not sorted by update time as asked (or no update times): restarting at the
            # last record's time could skip records; page on by plain offsets instead.
            self._seen = set()
            return since, start + len(page)
        last_second, tie = _last_second_run(page, self.replication_key)
        if last_second == since:
            self._seen |= set(tie)
            token = (since, start + len(page))
        else:  # the page's records of `last_second` are its last ones, the first of it
            self._seen = set(tie)
            token = (last_second, len(tie))
        overlapped = (token[0], token[1] - 1)
        if token[1] >= 1 and page[-1].get("id") is not None and overlapped != asked:
            self._expected = page[-1].get("id")
            return overlapped
        return token

    def already_read(self, second: str | None, ids: set[t.Any]) -> None:
        """Records of `second` read before this paginator took over (pages read ahead by
        offsets): left out if the second is read again."""
        if self.current_value and self.current_value[0] == second:
            self._seen |= ids


class OverlappingOffsetPaginator(OffsetPaginator):
    """Offsets, each page overlapping the last by one record, to see the list move.

    A record deleted or moved (edited, in a list sorted by update time) while the list is
    paged shifts every later one by a place, and the next offset passes over one unread.
    Each next page is asked to begin with the last record read. Found further on, records
    came in ahead of it (a list newest first, a file uploaded): those before it are read
    already and dropped with it. Not found, one may have been passed over: `on_moved` is
    told (the stream then makes sure the next run reads it again)."""

    def __init__(
        self,
        page_size: int,
        on_moved: t.Callable[[], None],
        identity: t.Callable[[dict[str, t.Any]], t.Any] = lambda row: row.get("id"),
    ) -> None:
        super().__init__(page_size)
        self._on_moved = on_moved
        self._identity = identity
        #: The id the page asked for should begin with (the last record read), if any.
        self._expected: t.Any = None

    def get_next(self, response: requests.Response) -> int | None:
        payload = payload_of(response)
        page = payload.get("data") or []
        token = super().get_next(response)  # from the page as answered
        expected, self._expected = self._expected, None
        if expected is not None:
            after = after_overlap(page, expected, self._identity)
            if after is None:
                self._on_moved()
            else:
                payload["data"] = after
        if token is None or token < 2 or not page or page[-1].get("id") is None:
            return token
        self._expected = self._identity(page[-1])
        return token - 1


def after_overlap(
    rows: list[dict[str, t.Any]], expected: t.Any, identity: t.Callable[[dict[str, t.Any]], t.Any]
) -> list[dict[str, t.Any]] | None:
    """The rows of a page after `expected`, the record it overlaps the last page by: first,
    or further on when records came in ahead of it (read already, then). None if it is not
    there: the list moved, and a record may have been passed over."""
    identities = [identity(row) for row in rows]
    return rows[identities.index(expected) + 1 :] if expected in identities else None


class NewestFirstPaginator(OverlappingOffsetPaginator):
    """For lists sortable by update time but not filterable by it (files): read newest
    first and stop at the first page that reaches back past the bookmark."""

    def __init__(
        self,
        page_size: int,
        replication_key: str,
        since: dt.datetime | None,
        on_moved: t.Callable[[], None],
    ) -> None:
        super().__init__(page_size, on_moved)
        self.replication_key = replication_key
        self.since = since

    def get_next(self, response: requests.Response) -> int | None:
        records = payload_of(response).get("data") or []
        past_the_bookmark = False
        if self.since is not None and records:
            seconds = [_second_of(record.get(self.replication_key)) for record in records]
            if None in seconds or seconds != sorted(seconds, reverse=True):
                self.since = None  # not sorted as asked: read on to the end, never stop early
            else:
                past_the_bookmark = parse_datetime(records[-1][self.replication_key]) < self.since
        token = super().get_next(response)  # drops the overlap record, if any
        return None if past_the_bookmark else token


#: Bytes asked of the socket at a time while a body is read against its deadline.
READ_CHUNK = 256 * 1024


def read_body(response: requests.Response, *, deadline: float) -> None:
    """Read a streamed response's body into it (`response.content`), giving up with a
    `ReadTimeout` (retried as any timeout) once `deadline` (`time.monotonic()`) passes.
    Each read returns what has arrived (`read1`); with urllib3 1.x, which has no `read1`,
    the body is read as `requests` does, under its per-read timeout only."""
    raw = response.raw
    read1 = getattr(raw, "read1", None)
    if read1 is None:
        response.content  # noqa: B018 - reads the body
        return
    chunks: list[bytes] = []
    try:
        while chunk := read1(READ_CHUNK, decode_content=True):
            chunks.append(chunk)
            if time.monotonic() > deadline:
                response.close()
                raise requests.exceptions.ReadTimeout(
                    "the answer took longer than request_timeout to arrive", response=response
                )
    except urllib3.exceptions.ReadTimeoutError as exc:
        raise requests.exceptions.ConnectionError(exc, response=response) from None
    except urllib3.exceptions.ProtocolError as exc:
        raise requests.exceptions.ChunkedEncodingError(exc) from None
    except urllib3.exceptions.DecodeError as exc:
        raise requests.exceptions.ContentDecodingError(exc) from None
    response._content = b"".join(chunks)
    response._content_consumed = True


def _datetimes_to_rfc3339(node: t.Any, path: tuple[str, ...]) -> None:
    """Rewrite the timestamp at `path` below `node` (`[]`: each item of a list) as RFC
    3339; whatever is not there, or not of the shape the path expects, is left as it is."""
    step, rest = path[0], path[1:]
    if step == "[]":
        items = node if isinstance(node, list) else []
        if rest:
            for item in items:
                _datetimes_to_rfc3339(item, rest)
        else:
            items[:] = [to_rfc3339(item) for item in items]
    elif isinstance(node, dict) and step in node:
        if rest:
            _datetimes_to_rfc3339(node[step], rest)
        elif node[step] is not None:
            node[step] = to_rfc3339(node[step])


def state_time(value: t.Any) -> dt.datetime | None:
    """A time saved in the state, or None if there is none or it does not parse."""
    try:
        return parse_datetime(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _second_of(value: t.Any) -> str | None:
    """A timestamp as the `updated_since` value of its second, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return to_query_timestamp(parse_datetime(value))
    except ValueError:
        return None


def _last_second_run(rows: list[dict[str, t.Any]], key: str) -> tuple[str | None, list[t.Any]]:
    """The update second of a sorted page's last record, and the ids of the records of
    that second at the page's end, in page order."""
    if not rows:
        return None, []
    last = _second_of(rows[-1].get(key))
    run = 0
    while run < len(rows) and _second_of(rows[-1 - run].get(key)) == last:
        run += 1
    return last, [row.get("id") for row in rows[len(rows) - run :]]


class CursorPaginator(_PipedrivePaginator):
    """v2 (and v1 projects/tasks): `additional_data.next_cursor`, null on the last page."""

    def __init__(self) -> None:
        super().__init__(None)

    def next_token(self, additional: dict[str, t.Any]) -> str | None:
        return additional.get("next_cursor") or None


class _PageToken:
    """What the SDK's request builder reads of a paginator: the token of the page."""

    __slots__ = ("current_value",)

    def __init__(self, token: t.Any) -> None:
        self.current_value = token


#: Failures after which no request of the run is worth sending. (An `ApiError`, such as a
#: 404, is left to the caller: a missing `*Fields` or `/recents` endpoint only degrades, a
#: list refused at its first page skips its stream.)
_FATAL = (
    AuthError,
    AccessError,
    ConnectionFailed,
    RateLimitError,
    TokenCapReached,
    RetriableAPIError,
    requests.exceptions.RequestException,
)

#: The page token of a v2 list's newest record.
_NEWEST = "newest"


class _OnePage(BaseAPIPaginator[t.Any]):
    """A single request for the page `token` names."""

    def get_next(self, response: requests.Response) -> None:
        return None


def reaches_past(records: list[dict[str, t.Any]], key: str, until: dt.datetime) -> bool:
    """Whether a page of a time window reaches past its end: its last two records do (or
    its only one). A last record alone past it may be one edited while the page was put
    together, with more of the window after it. Raises what parsing a time raises."""
    return bool(records) and all(parse_datetime(row[key]) >= until for row in records[-2:])


class WindowPaginator(_PipedrivePaginator):
    """The cursor pages of one time window: the token is `(window, cursor)`. The window
    ends at the first page that reaches its `until`, whether or not the server applied
    it: a list without an `updated_until` filter (or a server that ignores it) answers
    the next windows' records after this one's, and they are not this window's to read."""

    def __init__(self, window: Window, key: str) -> None:
        super().__init__((window, None))
        self._key = key

    def get_next(self, response: requests.Response) -> tuple[Window, str] | None:
        window = self.current_value[0]
        if window.until is not None:
            records = payload_of(response).get("data") or []
            with contextlib.suppress(KeyError, TypeError, ValueError, IndexError):
                if reaches_past(records, self._key, window.until):
                    return None
        return super().get_next(response)

    def next_token(self, additional: dict[str, t.Any]) -> tuple[Window, str] | None:
        cursor = additional.get("next_cursor")
        return (self.current_value[0], cursor) if cursor else None


@dataclass(eq=False)
class _WindowRead:
    """A time window due to be written, and its pages' chain once started; `split_off`
    when it is part of a window that was split."""

    window: Window
    chain: PageChain | None = None
    split_off: bool = False


def deletion_marker_made_automatic(metadata: MetadataMapping) -> bool:
    """Make `_sdc_deleted_at` automatic in a stream's metadata (discovered, or a catalog's
    from before it was); whether that changed anything."""
    entry = metadata.get(("properties", "_sdc_deleted_at"))
    if entry is None or entry.inclusion == Metadata.InclusionType.AUTOMATIC:
        return False
    entry.inclusion = Metadata.InclusionType.AUTOMATIC
    return True


def declared_replication_key(stream_class: type) -> str | None:
    """The replication key a stream class declares (the SDK's base has a property)."""
    for base in stream_class.__mro__:
        if "replication_key" in base.__dict__:
            key = base.__dict__["replication_key"]
            return key if isinstance(key, str) else None
    return None


class PipedriveStream(RESTStream[t.Any]):
    """What every Pipedrive stream shares. Subclasses set `path`, keys and schema."""

    #: The schema shipped in `tap_pipedrive/schemas/<name>.json`, before custom fields.
    static_schema = StreamSchema(SCHEMAS)
    #: The entity whose custom fields the records carry (`deal`, `person`, ...), if any.
    custom_field_entity: t.ClassVar[str | None] = None
    #: Objects nested in the records that are another entity's record (a deal
    #: participant's `person`, v1-shaped): property -> that entity, whose custom fields
    #: they carry, laid out and typed as in the entity's own stream.
    nested_custom_field_entities: t.ClassVar[dict[str, str]] = {}
    #: `(field, value)` pairs, any of which marks a record as deleted in Pipedrive; such
    #: records get `_sdc_deleted_at` (their update time) so targets can apply the delete.
    deleted_if: t.ClassVar[tuple[tuple[str, t.Any], ...]] = ()
    #: The entity's item name in `/v1/recents`, for entities whose lists leave deleted
    #: records out: their deletions of the last 30 days are read there after the list.
    recents_item: t.ClassVar[str | None] = None
    #: The item name under which `/v1/recents` reports changes to this stream's records:
    #: when it reports none since the stream's last sync, the stream is skipped.
    changes_item: t.ClassVar[str | None] = None
    primary_keys: t.ClassVar[list[str]] = ["id"]
    page_size: t.ClassVar[int] = MAX_PAGE_SIZE
    #: Whether the endpoint pages at all (several v1 lists return everything at once).
    paginated: t.ClassVar[bool] = True
    #: Query parameters this endpoint always takes (sorting, status filters, ...).
    extra_params: t.ClassVar[dict[str, t.Any]] = {}
    #: Query parameters taken from the partition's or parent's context: name -> context key.
    context_params: t.ClassVar[dict[str, str]] = {}
    #: The name of the endpoint's `>=` update-time filter, if it has one.
    updated_since_param: t.ClassVar[str | None] = None
    #: The endpoint cannot filter by update time: records older than the bookmark are
    #: dropped here, so an incremental run sends only what changed.
    filter_here: t.ClassVar[bool] = False
    _filter_since: dt.datetime | None = None
    #: The bookmark a sorted stream's sync began at (canonical text), for
    #: `_increment_stream_state`.
    _resent_below: str | None = None
    #: Set when the API sent a record older than one before it (`_read_unsorted_from_here`).
    _unsorted: bool = False

    #: Tries per request before giving up on a transient fault, and the backoff cap.
    max_tries: t.ClassVar[int] = 8
    backoff_base_seconds: t.ClassVar[float] = 1.0
    backoff_max_seconds: t.ClassVar[float] = 60.0
    #: A 429 asking for a longer wait than this means the daily budget is spent: stop.
    max_rate_limit_wait_seconds: t.ClassVar[float] = 300.0

    _LOG_REQUEST_METRIC_URLS = False
    #: A STATE every 1,000 records (the SDK's default is 10,000): a run that dies loses
    #: at most that much progress, never records.
    STATE_MSG_FREQUENCY = 1000

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        # A connection kept open for every request the stream may have in flight: requests
        # keeps 10 a host, and past that it opened a connection for each request and warned
        # (`Connection pool is full`) as it discarded it.
        adapter = requests.adapters.HTTPAdapter(
            pool_maxsize=max(10, 2 * (self.concurrency + SPARE_ON_WIRE))
        )
        for scheme in ("https://", "http://"):
            self.requests_session.mount(scheme, adapter)
        self._met: set[str] = set()

    def _first_time(self, what: str) -> bool:
        """Whether `what` is met for the first time this run: for warnings given once."""
        if what in self._met:
            return False
        self._met.add(what)
        return True

    @property
    def url_base(self) -> str:
        raise NotImplementedError

    @cached_property
    def _roots(self) -> tuple[str, str]:
        return api_roots(self.config)

    @cached_property
    def http_headers(self) -> dict[str, str]:
        """The token goes in a header: a token in a URL ends up in proxy and server logs."""
        return {
            "x-api-token": self._api_token,
            "Accept": "application/json",
            "User-Agent": self.user_agent,
        }

    @property
    def _api_token(self) -> str:
        return self.config.get("api_key") or self.config.get("api_token") or ""

    @cached_property
    def user_agent(self) -> str:
        from tap_pipedrive import __version__

        return self.config.get("user_agent") or f"tap-pipedrive/{__version__}"

    @property
    def timeout(self) -> float:
        return float(self.config.get("request_timeout") or 60)

    #: Never follow a redirect: requests would resend the `x-api-token` header to
    #: whatever host it points at (it strips only `Authorization`).
    allow_redirects = False

    @cached_property
    def schema(self) -> dict[str, t.Any]:  # type: ignore[override]
        """The shipped schema plus one typed column per custom field of the account."""
        layout = self.custom_field_layout
        if layout is None and not self.flags_deletions and not self.nested_custom_fields:
            return self.static_schema
        schema = copy.deepcopy(self.static_schema)
        if layout is not None:
            schema["properties"].pop("custom_fields", None)
            schema["properties"].update(layout.schema_properties())
        for name, nested_layout in self.nested_custom_fields.items():
            nested = schema["properties"].setdefault(name, {"type": ["object", "null"]})
            nested.setdefault("properties", {}).update(nested_layout.schema_properties())
        if self.flags_deletions:
            schema["properties"]["_sdc_deleted_at"] = {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "When Pipedrive reported the record deleted (its update time)",
            }
        return schema

    def apply_catalog(self, catalog: t.Any) -> None:
        """The catalog's selection and schema, but not a replication key the stream no
        longer has: a catalog discovered when users was bookmarked on `modified` (Meltano
        keeps one cached) made it incremental again, its state never skippable."""
        super().apply_catalog(catalog)
        if declared_replication_key(type(self)) is None and self.replication_key is not None:
            self.replication_key = None
            self.forced_replication_method = None

    @property
    def metadata(self) -> MetadataMapping:
        """`_sdc_deleted_at` is automatic, like the keys: a deletion sent without it (a
        catalog selecting a few columns) reads as an update that blanks the row."""
        metadata = super().metadata
        if deletion_marker_made_automatic(metadata):
            self._mask = None
        return metadata

    @property
    def selected(self) -> bool:
        return super().selected

    @selected.setter
    def selected(self, value: bool | None) -> None:
        """Also rebuilds this stream's maps: the SDK built them from the selection at start
        (a deselected stream's schema has no properties), and `--test` selects every stream
        afterwards, which otherwise sent full records under an empty SCHEMA."""
        RESTStream.selected.fset(self, value)  # type: ignore[attr-defined]
        mapper = self._tap._mapper  # None for a tap built without maps (discovery)
        if mapper is not None:
            mapper.register_raw_stream_schema(
                self.name,
                get_selected_schema(self.name, self.effective_schema, self.mask),
                self.primary_keys,
            )
        self._stream_maps = None
        for cached in ("_all_properties_selected", "_record_prefix"):
            self.__dict__.pop(cached, None)

    def sync(self, context: Context | None = None) -> None:
        """The SDK's, told to the tap first (`turn_begins`), and a stream's records out once
        it is done: a full-table stream writes no STATE at its end (which would flush
        them), and `--test` (the SDK's dry run) ends without `sync_all`'s final flush, so
        the last stream's records stayed in the block."""
        if self.parent_stream_type is None:
            self._tap.turn_begins(self)  # type: ignore[attr-defined]
        super().sync(context)
        if context is None:
            self._tap.message_writer.flush()  # type: ignore[attr-defined]

    @property
    def dry_run(self) -> bool:
        """`--test`: the SDK ends each stream after its first record."""
        return self.ABORT_AT_RECORD_COUNT is not None

    def sync_child(self, child: PipedriveStream, context: Context) -> None:
        """`child.sync(context)`, where a dry run (`--test`) ending the child after its
        first record ends only the child: the SDK's abort went up through the parent's
        record loop, so the parent's first record (a deal) was never written."""
        try:
            child.sync(context=context)
        except (AbortedSyncFailedException, AbortedSyncPausedException) as error:
            if not isinstance(error.__cause__, MaxRecordsLimitException):
                raise

    def _write_schema_message(self) -> None:
        """Once per run: the SDK writes it on every sync() call, i.e. for child streams
        once per parent record."""
        if not getattr(self, "_schema_written", False):
            self._schema_written = True
            super()._write_schema_message()

    @cached_property
    def _conformer(self) -> Conformer:
        return Conformer(self.effective_schema)

    @cached_property
    def _all_properties_selected(self) -> bool:
        return all(self.mask.values())

    @cached_property
    def _record_prefix(self) -> bytes | None:
        """The start of this stream's RECORD lines, when records go out as they are (no
        stream maps, no flattening); else None and the SDK's message path is used."""
        if len(self.stream_maps) != 1:
            return None
        stream_map = self.stream_maps[0]
        if type(stream_map) is not SameRecordTransform or stream_map.flattening_enabled:
            return None
        alias = json.dumps(stream_map.stream_alias, ensure_ascii=False)
        return f'{{"type":"RECORD","stream":{alias},"record":'.encode()

    def _stamp_extraction(self) -> None:
        """The end of the RECORD lines of the page just read: its extraction time."""
        version = "" if self._stream_version is None else f',"version":{self._stream_version}'
        extracted = dt.datetime.now(UTC).isoformat()
        self._record_suffix = f'{version},"time_extracted":"{extracted}"}}\n'.encode()

    _record_suffix: bytes | None = None

    def _write_record_message(self, record: dict[str, t.Any]) -> None:
        """One RECORD line, encoded straight from the record (the same line the SDK's
        path writes, without a message object and a dict per record)."""
        prefix = self._record_prefix
        if prefix is None:
            super()._write_record_message(record)
            return
        if not self._all_properties_selected:
            pop_deselected_record_properties(record, self.schema, self.mask)
        record = self._conformer.conform(record)
        if self._record_suffix is None:
            self._stamp_extraction()
        self._tap.message_writer.write_record(prefix, record, self._record_suffix)  # type: ignore[attr-defined]
        self.state_manager.is_flushed = False

    def _generate_record_messages(self, record: dict[str, t.Any]) -> t.Iterator[RecordMessage]:
        """The SDK's record messages, without its per-value type conformance: see
        `tap_pipedrive.conform` for why only boolean fields need it here."""
        if not self._all_properties_selected:
            pop_deselected_record_properties(record, self.schema, self.mask)
        record = self._conformer.conform(record)
        extracted = dt.datetime.now(UTC)
        for stream_map in self.stream_maps:
            mapped_record = stream_map.transform(record)
            if mapped_record is not None and stream_map.flattening_enabled:
                _drop_flattened_away_nulls(mapped_record, stream_map)
            if mapped_record is not None:
                yield RecordMessage(
                    stream=stream_map.stream_alias,
                    record=mapped_record,
                    version=self._stream_version,
                    time_extracted=extracted,
                )

    def log(self, message: str, *args: t.Any, level: int = logging.INFO, **kwargs: t.Any) -> None:
        """Without the SDK's "An unhandled error occurred while syncing" for the tap's own
        stops (the token cap, a bad token, ...): they are handled, and end the run with a
        line of their own (exit code 0 for the cap), not an ERROR line per stream. Nor for
        `--test`, which ends every stream after its first record that way."""
        error = sys.exc_info()[1]
        handled = isinstance(error, (PipedriveError, RunHalted)) or isinstance(
            getattr(error, "__cause__", None), MaxRecordsLimitException
        )
        if handled and message.startswith("An unhandled error occurred"):
            return
        super().log(message, *args, level=level, **kwargs)

    def hold_back(self, state: dict[str, t.Any]) -> None:
        """Move this stream's bookmark in `state` (the tap's, a copy) back before any
        record whose dependants are not written yet, so that a run resumed from it reads
        them again. Nothing to do for a stream without dependants."""

    @property
    def flags_deletions(self) -> bool:
        return bool(self.deleted_if or self.recents_item)

    @cached_property
    def custom_field_layout(self) -> CustomFieldLayout | None:
        if not self.custom_field_entity:
            return None
        return self._tap.custom_field_layout(self.custom_field_entity)  # type: ignore[attr-defined]

    @cached_property
    def nested_custom_fields(self) -> dict[str, CustomFieldLayout]:
        """Property -> the layout of the entity nested there (`nested_custom_field_entities`)."""
        return {
            name: self._tap.custom_field_layout(entity)  # type: ignore[attr-defined]
            for name, entity in self.nested_custom_field_entities.items()
        }

    #: "v1" or "v2": which API serves the stream, for its token cost.
    api_version: t.ClassVar[str] = "v1"

    @cached_property
    def token_cost(self) -> int:
        """What one request of this stream costs (the spec's `x-token-cost`)."""
        return token_cost(self.api_version, self.path)

    def _request(
        self, prepared_request: requests.PreparedRequest, context: Context | None
    ) -> requests.Response:
        """Every attempt, retries included, is charged before it is sent, and waits for
        its slot under the burst limit."""
        if self._tap.halted is not None:  # type: ignore[attr-defined]
            raise RunHalted(self._tap.halted)  # type: ignore[attr-defined]
        self._tap.meter.charge(self.meter_name, self.token_cost)  # type: ignore[attr-defined]
        self._tap.pacer.wait_for_slot()  # type: ignore[attr-defined]
        try:
            return self._send_and_read(prepared_request, context)
        except requests.exceptions.ConnectionError as exc:
            if never_sent(exc):  # counted as neither a request nor tokens spent
                self._tap.meter.refund(self.meter_name, self.token_cost, request=True)  # type: ignore[attr-defined]
            # A host that does not exist, or a port where nothing listens, before any
            # request of the run got through, is a wrong api_url: say so now, not after
            # two minutes of retries (Pipedrive itself never refuses a connection).
            if self._tap.api_answered:  # type: ignore[attr-defined]
                raise
            url = requests.utils.urlparse(prepared_request.url or "")
            if no_such_host(exc):
                if f"{url.scheme}://{url.netloc}" == DEFAULT_HOST:  # a host that exists
                    raise ConnectionFailed(
                        f"the DNS here knows no host {url.hostname}: check this machine's "
                        "network (DNS, proxy)"
                    ) from None
                raise ConnectionFailed(
                    f"no such host {url.hostname}: check {self._url_setting}"
                ) from None
            if connection_refused(exc):
                refused_for = self._tap.refused_for()  # type: ignore[attr-defined]
                if refused_for >= REFUSED_GIVE_UP_SECONDS:
                    raise ConnectionFailed(
                        f"{url.netloc} refused every connection for {refused_for:.0f} s "
                        f"(nothing listens there): check {self._url_setting}"
                    ) from None
            raise

    @property
    def _url_setting(self) -> str:
        """The setting that chose the host: `api_url`, else `company_domain`."""
        if not self.config.get("api_url") and self.config.get("company_domain"):
            return "company_domain"
        return "api_url"

    def _send_and_read(
        self, prepared_request: requests.PreparedRequest, context: Context | None
    ) -> requests.Response:
        """The SDK's request, with `request_timeout` a deadline for the whole answer: the
        one `requests` applies is per read of the socket, so a body that trickles in a
        byte at a time (a stalling proxy) would hold the run for hours."""
        started = time.monotonic()
        response = self.requests_session.send(
            self.authenticator(prepared_request),
            timeout=self.timeout,
            allow_redirects=self.allow_redirects,
            stream=True,
        )
        self._tap.connection_answered()  # type: ignore[attr-defined]  # whatever the status
        if response.status_code == HTTPStatus.UNAUTHORIZED:  # a token that is no company's
            self._tap.meter.refund(self.meter_name, self.token_cost, request=False)  # type: ignore[attr-defined]
        read_body(response, deadline=started + self.timeout)
        self._write_request_duration_log(
            endpoint=self.path, response=response, context=context, extra_tags=None
        )
        self.validate_response(response)
        return response

    @property
    def meter_name(self) -> str:
        """The stream whose API usage a request counts towards."""
        return self.name

    # -- pages in flight ----------------------------------------------------------------

    @cached_property
    def _send(self) -> t.Callable[[requests.PreparedRequest, Context | None], requests.Response]:
        """One request with the SDK's retries and backoff around it."""
        return self.request_decorator(self._request)

    def fetch_page(self, context: Context | None, token: t.Any) -> requests.Response:
        """Send the request for the page `token` names (retries included); thread-safe.

        A fatal answer (bad token, budget spent, block page, retries exhausted) halts the
        run's every other request too: none is sent after it, whatever thread it is in.
        """
        prepared = self._prepare_request(context=context, page=_PageToken(token))
        try:
            return self._send(prepared, context)
        except _FATAL as exc:
            self._tap.halt(exc)  # type: ignore[attr-defined]
            raise

    @property
    def concurrency(self) -> int:
        return self._tap.concurrency  # type: ignore[attr-defined]

    def splits_pay_off(self) -> bool:
        """Whether to split a long list into parts read side by side. A page chain already
        keeps two at work (its next request in flight while this page is written), and
        splitting costs part-filled pages (more requests, more tokens) and pages held in
        memory: it pays off only where the round trip needs at least twice that in flight
        to reach the burst limit, i.e. a distant API, not a busy one next door."""
        return self.in_flight_wanted() > 3  # never more than `max_concurrent_requests`

    def in_flight_wanted(self) -> int:
        """Requests to keep in flight now: as many as the round trip needs to reach the
        burst limit, within `max_concurrent_requests`."""
        return self._tap.in_flight_wanted()  # type: ignore[attr-defined]

    def new_chain(
        self, context: Context | None, paginator: BaseAPIPaginator[t.Any], **options: t.Any
    ) -> PageChain:
        """The pages of `paginator` under `context`, fetched ahead of the reader."""
        return PageChain(
            lambda token: self.fetch_page(context, token),
            paginator,
            inline=self.concurrency <= 1,
            name=f"{self.name}-pages",
            **options,
        )

    def first_chain(self, context: Context | None) -> PageChain | PrimedPages:
        """Where the stream's pages start: what the tap started before the stream's turn
        came (its first page's chain, or the list already begun), else a new chain."""
        head = self._tap.take_head(self, context)  # type: ignore[attr-defined]
        return head if head is not None else self.plain_chain(context)

    def plain_chain(self, context: Context | None) -> PageChain:
        """The stream's own paginator as a chain, held after its first page; two pages
        ahead of the writer, so that a page that takes the writer less than a round trip
        does not leave it waiting (at no latency: 1.03 of the floor's records/s against
        0.80 with one, for 2 MB)."""
        return self.new_chain(
            context,
            self.get_new_paginator() or SinglePagePaginator(),
            hold=True,
            depth=2,
            compact=compact_payload,
        )

    def head_chain(self, context: Context | None) -> PageChain:
        """The stream's first page, to be requested before its turn: held after that page
        until the stream reads it, unless the list is read in sequence (then its first
        `SEQUENCE_AHEAD` pages). The bookmark it starts from is settled first, as the SDK
        settles it when the stream's turn comes."""
        self._normalize_bookmark(context)
        if self.replication_key:
            self._write_starting_replication_value(context)
        if self.read_ahead_from_the_start:
            paginator = self.get_new_paginator() or SinglePagePaginator()
            return self.new_chain(context, paginator, depth=SEQUENCE_AHEAD, compact=compact_payload)
        return self.plain_chain(context)

    @property
    def may_be_long(self) -> bool:
        """Whether the list may run to many pages read in parts (`room_on_wire`): an
        incremental list that is not read in sequence, one partition."""
        return bool(
            self.replication_key
            and self.partitions is None
            and not self.reads_in_sequence
            and self.splits_pay_off()
        )

    @property
    def reads_in_sequence(self) -> bool:
        """A list of pages that cannot be read in parts side by side: each page waits for
        the one before it, one round trip each."""
        return False

    @property
    def read_ahead_from_the_start(self) -> bool:
        """A list read in sequence, from an API distant enough that its round trips are
        worth hiding: its first `SEQUENCE_AHEAD` pages are fetched as the run starts. Next
        door they would only wait in memory: at no latency, fetched ahead with the other
        first pages, they raised the peak RSS of a 1,000,000-record run by 4 to 7 MB over
        one of 100,000 (whose lists are shorter)."""
        return self.reads_in_sequence and self.in_flight_wanted() > 1

    def response_pages(self, context: Context | None) -> t.Iterator[requests.Response]:
        """The responses to read, in order: the first page, then either the rest of its
        chain (the next page fetched while this one is written) or, when the list is long
        and the round trip asks for it, the parts `split_rest` reads side by side."""
        start = self.first_chain(context)
        if isinstance(start, PrimedPages):
            yield from start
            return
        yield from self._pages_from(start, context)

    def prime(self, context: Context | None, head: PageChain) -> PrimedPages:
        """Start reading this list before its turn: its first page (answered already) is
        taken from `head` and the parts after it are started now."""
        return PrimedPages(self._pages_from(head, context))

    def _pages_from(
        self, head: PageChain, context: Context | None
    ) -> t.Iterator[requests.Response]:
        pages = head.pages()
        first = next(pages, None)
        if first is None:
            return
        rest = None
        if not head.paginator.finished and self.splits_pay_off():
            rest = self.split_rest(context, first, head.paginator.current_value)
        if rest is None:
            head.release()
            yield first
            yield from pages
            return
        pages.close()  # the rest comes from the parts, not from this page's paginator
        yield from rest

    def split_rest(
        self, context: Context | None, first: requests.Response, after_first: t.Any
    ) -> t.Iterator[requests.Response] | None:
        """`first`, then the rest of the list read in parts side by side; None if this
        list cannot be split."""
        return None

    def request_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        """Every record of every page, in order; the pages come from `response_pages`."""
        keep_heads_ahead = getattr(self._tap, "keep_heads_ahead", None)
        for response in self.response_pages(context):
            self._stamp_extraction()
            if keep_heads_ahead is not None:
                keep_heads_ahead()
            yield from self.parse_response(response)

    @cached_property
    def datetime_fields(self) -> tuple[str, ...]:
        """Top-level fields the schema declares as date-times; normalised on every record."""
        return tuple(
            name
            for name, prop in self.schema.get("properties", {}).items()
            if prop.get("format") == "date-time"
        )

    @cached_property
    def nested_datetime_paths(self) -> tuple[tuple[str, ...], ...]:
        """Where the schema declares date-times below the top level (a participant's
        `person.add_time`, `[]` for each item of an array): normalised too."""
        paths: list[tuple[str, ...]] = []

        def walk(node: t.Any, path: tuple[str, ...]) -> None:
            if not isinstance(node, dict):
                return
            if node.get("format") == "date-time" and len(path) > 1:
                paths.append(path)
            for name, child in (node.get("properties") or {}).items():
                walk(child, (*path, name))
            walk(node.get("items"), (*path, "[]"))
            for child in node.get("anyOf") or ():
                walk(child, path)

        walk(self.schema, ())
        return tuple(paths)

    # -- requests ---------------------------------------------------------------------

    def get_new_paginator(self) -> BaseAPIPaginator[t.Any] | None:
        raise NotImplementedError

    def get_url_params(
        self,
        context: Context | None,
        next_page_token: t.Any,
    ) -> dict[str, t.Any]:
        params: dict[str, t.Any] = dict(self.extra_params)
        for name, key in self.context_params.items():
            params[name] = (context or {})[key]
        if self.paginated:
            params["limit"] = self.page_size
        if self.updated_since_param and self.replication_key:
            since = self.get_starting_timestamp(context)
            if since is not None:
                params[self.updated_since_param] = to_query_timestamp(since)
        return params

    # -- responses --------------------------------------------------------------------

    def validate_response(self, response: requests.Response) -> None:
        """Sort a response into fine, retry, or stop with a line the user can act on."""
        status = response.status_code
        if status == HTTPStatus.TOO_MANY_REQUESTS:
            wait = rate_limit_wait(response)
            if wait is not None and wait > self.max_rate_limit_wait_seconds:
                raise RateLimitError(
                    f"Pipedrive rate limit: it asks to wait {wait:.0f} s before the next "
                    f"request ({self.name}), which means the company's daily API token "
                    "budget is spent; stopping now, run again after the reset and the tap "
                    "resumes from its saved state"
                )
            # Every thread waits, not only the one retrying: the others would draw 429s too.
            hold = min(wait if wait is not None else 1.0, self.backoff_max_seconds)
            self._tap.pacer.hold(hold)  # type: ignore[attr-defined]
            self._tap.pacer.congested(0.5)  # type: ignore[attr-defined]
            raise RetriableAPIError(self._error_line(response), response)
        if status >= HTTPStatus.INTERNAL_SERVER_ERROR or status == HTTPStatus.REQUEST_TIMEOUT:
            raise RetriableAPIError(self._error_line(response), response)
        if status == HTTPStatus.UNAUTHORIZED:
            raise AuthError(
                "Pipedrive rejected the API token (401 Unauthorized): check api_key "
                "(Pipedrive > Personal preferences > API)"
            )
        if status == HTTPStatus.PAYMENT_REQUIRED:
            raise AccessError(
                "Pipedrive refused the request (402 Payment Required): the company "
                "account is not open or its plan does not include the API"
            )
        if status == HTTPStatus.FORBIDDEN:
            if self._is_html(response):
                raise AccessError(
                    "Pipedrive blocked this client (403 with its HTML block page), which it "
                    "does after repeated rate-limit violations: wait before running again"
                )
            raise UnavailableError(
                f"Pipedrive denied access to {self._endpoint()} (403 Forbidden): "
                f"{self._api_error_text(response)}; the account's plan or the token's "
                "user has no access to it"
            )
        if 300 <= status < 400:
            raise ApiError(
                f"Pipedrive answered {status} redirecting {self._endpoint()} elsewhere; "
                f"the tap does not follow redirects with the token: check {self._url_setting}"
            )
        if status == HTTPStatus.NOT_FOUND:
            raise NotFoundError(self._error_line(response))
        if status == HTTPStatus.GONE:
            raise UnavailableError(self._error_line(response))
        if status >= HTTPStatus.BAD_REQUEST:
            raise ApiError(self._error_line(response))
        try:
            payload = payload_of(response)
        except ValueError as exc:
            raise RetriableAPIError(
                f"Pipedrive sent a body that is not valid JSON for {self._endpoint()} "
                f"(status {status}, {len(response.content)} bytes)",
                response,
            ) from exc
        if not isinstance(payload, dict):
            raise RetriableAPIError(
                f"Pipedrive sent an unexpected body for {self._endpoint()}", response
            )
        if payload.get("success") is False:
            raise ApiError(
                f"Pipedrive reported an error for {self._endpoint()}: "
                f"{self._api_error_text(response)}"
            )
        self._tap.api_answered = True  # type: ignore[attr-defined]
        self._pace(response)

    def _pace(self, response: requests.Response) -> None:
        """Space requests by the burst limit; and should the window still be spent (other
        clients share the token's budget), wait rather than collect a 429.

        The round trip learnt is the time to the answer's headers (`elapsed`): the
        tap's own time parsing the body, longer while other threads hold the interpreter,
        is no reason to keep more requests in flight."""
        pacer = self._tap.pacer  # type: ignore[attr-defined]
        pacer.learn(response.headers)
        pacer.observe_round_trip(response.elapsed.total_seconds())
        remaining = response.headers.get("x-ratelimit-remaining")
        if remaining is None:
            return
        try:
            spent = int(float(remaining)) <= 0
        except ValueError:
            return
        if not spent:
            pacer.answered()
            return
        reset = _header_seconds(response, "x-ratelimit-reset") or 1.0
        # Every thread holds: another one's request would draw the 429.
        wait = pacer.window_spent(min(reset, self.backoff_max_seconds))
        if wait >= 1.0:
            self.logger.info("Rate-limit window spent; pausing %.1f s", wait)

    def _endpoint(self) -> str:
        return self.path

    @staticmethod
    def _is_html(response: requests.Response) -> bool:
        content_type = response.headers.get("Content-Type", "")
        return "html" in content_type or response.content[:1] == b"<"

    @staticmethod
    def _api_error_text(response: requests.Response) -> str:
        body = getattr(response, _PAYLOAD_ATTR, None)
        try:
            body = body if body is not None else json.loads(response.content)
        except ValueError:
            return "no JSON error body"
        if not isinstance(body, dict):
            return "no JSON error body"
        parts = [str(body[key]) for key in ("error", "error_info") if body.get(key)]
        return " - ".join(parts) or "no error message"

    def _error_line(self, response: requests.Response) -> str:
        reason = response.reason or _REASONS.get(response.status_code, "")
        text = "" if self._is_html(response) else f": {self._api_error_text(response)}"
        return f"Pipedrive answered {response.status_code} {reason} for {self._endpoint()}{text}"

    def response_error_message(self, response: requests.Response) -> str:
        return self._error_line(response)

    # -- retries ----------------------------------------------------------------------

    def backoff_max_tries(self) -> int:
        return self.max_tries

    def backoff_wait_generator(self) -> t.Generator[float, t.Any, None]:
        """Wait as a 429 says (`Retry-After`, else `x-ratelimit-reset`); else back off
        exponentially (1, 2, 4, ... s, capped)."""
        attempt = 0
        exception = yield  # type: ignore[misc]
        while True:
            attempt += 1
            wait = None
            response = getattr(exception, "response", None)
            if response is not None and response.status_code == HTTPStatus.TOO_MANY_REQUESTS:
                wait = rate_limit_wait(response)
            if wait is None:
                wait = min(self.backoff_base_seconds * 2 ** (attempt - 1), self.backoff_max_seconds)
            exception = yield wait

    def backoff_jitter(self, value: float) -> float:
        """Up to 10% extra, so parallel taps do not retry in lockstep."""
        import random

        return value * (1 + random.random() * 0.1)

    def backoff_handler(self, details: t.Any) -> None:
        exception = details.get("exception")
        self.logger.warning(
            "Retrying %s in %.1f s (try %d of %d): %s",
            self.name,
            details.get("wait") or 0.0,
            details.get("tries") or 0,
            self.max_tries,
            exception if isinstance(exception, RetriableAPIError) else type(exception).__name__,
        )

    # -- records ----------------------------------------------------------------------

    def parse_response(self, response: requests.Response) -> t.Iterable[dict[str, t.Any]]:
        """`data` holds the page; Pipedrive sends `"data": null` for an empty one."""
        data = payload_of(response).get("data")
        if not data:
            return iter(())
        if isinstance(data, dict):
            return iter((data,))
        return iter(data)

    def get_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        self._normalize_bookmark(context)
        self.moved = False
        if self.reported_unchanged(context):
            self.logger.info(
                "Pipedrive reports no %s changed since this stream's last sync: skipped",
                self.changes_item,
            )
            self._mark_synced(context)
            return
        if self._tap.is_unavailable(self):  # type: ignore[attr-defined]
            return  # refused for an earlier partition: no request for the others
        entities = [self.custom_field_entity, *self.nested_custom_field_entities.values()]
        refused = next(
            filter(None, (self._tap.definitions_failure(e) for e in entities if e)),  # type: ignore[attr-defined]
            None,
        )
        if refused:  # no custom field could be named or typed: none goes out under its hash
            self._tap.skip_unavailable(self, refused)  # type: ignore[attr-defined]
            return
        self._warn_of_fields_missing_from_catalog()
        if self.replication_key and not self.is_sorted and self._first_time("unsorted"):
            self.logger.info(
                "Pipedrive cannot filter %s by update time: read newest first down to the "
                "bookmark, which moves once the list is read (a run stopped midway reads "
                "it again from the bookmark before)",
                self.name,
            )
        self._note_deletions_from(context)
        if self.filter_here and self.replication_key:
            self._filter_since = self.get_starting_timestamp(context)
        if self.replication_key and self.is_sorted:
            start = self.get_starting_timestamp(context)
            self._resent_below = format_datetime(start) if start else None
        self._unsorted = False
        records = iter(self.request_records(context))
        try:
            first = next(records, None)
        except UnavailableError as exc:  # refused at its first page
            if isinstance(exc, NotFoundError) and context and "{" in self.path:
                # The record the path names (a deal, a mail thread) was deleted after its
                # list was read: it has nothing left to read, and the run goes on.
                self.logger.warning(
                    "%s for %s: skipped (deleted since it was listed?)", exc, context
                )
            else:  # the list itself: only this stream is skipped
                if isinstance(exc, NotFoundError):
                    self._tap.list_not_found(self, exc)  # type: ignore[attr-defined]
                self._tap.skip_unavailable(self, exc)  # type: ignore[attr-defined]
            return
        if first is not None:
            yield first
            yield from records  # a refusal after the first page stops the run: no gap
        if self.recents_item:
            yield from self._recent_deletions(context)
        if self.moved:
            self._keep_bookmark(context)
            self._pending_version = None  # rows may be missing: no version to activate
            return
        self._mark_synced(context)
        if context is None or context == (self.partitions or [None])[-1]:
            self._read_whole()

    def _write_activate_version_message(self, full_table_version: int) -> None:
        """Deferred to the end of a complete read (`_activate_version`). The SDK writes it
        before the first record, and a target that applies it drops the table's older rows
        then: all of them when the run goes on to skip the stream (unchanged, refused) or
        stops midway. A child stream's rows are only its parents' of this run (deal
        children: the changed deals'), so it never activates a version."""
        self._pending_version = None if self.parent_stream_type else full_table_version
        self._whole = False

    _pending_version: int | None = None
    _whole = False
    _batching = False

    def _read_whole(self) -> None:
        """The table was read whole: activate its version now, or in batch mode once its
        last BATCH is out (it follows the records' generator)."""
        self._whole = True
        if not self._batching:
            self._activate_version()

    def _sync_batches(self, batch_config: t.Any, context: Context | None = None) -> None:
        self._batching = True
        try:
            super()._sync_batches(batch_config, context)
        finally:
            self._batching = False
        self._activate_version()

    def _activate_version(self) -> None:
        version, self._pending_version = self._pending_version, None
        if version is not None and self._whole:
            super()._write_activate_version_message(version)

    #: Whether the list moved while this run read it by offsets (see `list_moved`).
    moved: bool = False

    @staticmethod
    def row_identity(row: dict[str, t.Any]) -> t.Any:
        """What tells a row of this list from the others, for the pages' overlap."""
        return row.get("id")

    def list_moved(self) -> None:
        """A page read by offsets did not begin with the record the last one ended with:
        records were deleted or edited meanwhile, and one may have slid past an offset
        unread. The run goes on, but its bookmark does not move and the stream is not
        marked synced, so the next run reads this stretch again (`_keep_bookmark`)."""
        self.moved = True
        if self._first_time("list moved"):
            self.logger.warning(
                "%s changed while it was read page by page (records deleted or edited): "
                "its bookmark stays where it was, so the next run reads them again",
                self.name,
            )

    def _keep_bookmark(self, context: Context | None) -> None:
        """Leave the bookmark where the run found it: the SDK would otherwise promote the
        newest update time read to be the bookmark (lists not sorted oldest first)."""
        markers = self.get_context_state(context).get("progress_markers") or {}
        markers.pop("replication_key", None)
        markers.pop("replication_key_value", None)

    # -- what /v1/recents tells ----------------------------------------------------------

    def _synced_at(self) -> dt.datetime | None:
        """When this stream's last complete sync started (less a margin), from the state."""
        return state_time(self.stream_state.get("synced_at")) if self.changes_item else None

    def recents_since(self) -> tuple[set[str], dt.datetime | None] | None:
        """The `/v1/recents` item types this stream needs, and from when (None: as far
        back as it reaches); None if it needs none."""
        items: set[str] = set()
        since: list[dt.datetime | None] = []
        if self.recents_item:  # deletions since the bookmark, or the run that set it began
            items.add(self.recents_item)
            since.append(state_time(self.stream_state.get("replication_key_value")))
            begun = state_time(self.stream_state.get("deletions_from"))
            if begun is not None:
                since.append(begun)
        synced_at = self._synced_at()
        if synced_at is not None and synced_at >= reach_floor():  # changes since the last sync
            items.add(t.cast(str, self.changes_item))
            since.append(synced_at)
        if not items:
            return None
        return items, None if None in since else min(t.cast(list[dt.datetime], since))

    def reported_unchanged(self, context: Context | None) -> bool:
        """Whether Pipedrive reports nothing of this stream changed since its last sync,
        and the bookmark is still the one that sync left (one moved back, to read a stretch
        again, is read from)."""
        synced_at = self._synced_at() if context is None else None
        if synced_at is None or synced_at < reach_floor():
            return False
        state = self.stream_state
        bookmark = state_time(state.get("replication_key_value"))
        if "synced_bookmark" not in state or state_time(state["synced_bookmark"]) != bookmark:
            return False
        changes = self._tap.recent_changes()  # type: ignore[attr-defined]
        return changes is not None and changes.unchanged_since(self.changes_item, synced_at)

    def _mark_synced(self, context: Context | None) -> None:
        """Note a complete sync (not a walk of a deselected parent for its children: its
        own records were not sent). Its bookmark is noted beside it once final."""
        started = getattr(self._tap, "run_started_at", None)
        if self.changes_item and context is None and started is not None and self.selected:
            self.stream_state["synced_at"] = format_datetime(started - CLOCK_MARGIN)
            self.stream_state.pop("deletions_from", None)
            self._synced_this_run = True

    _synced_this_run = False

    def _finalize_state(self, state: dict | None = None) -> None:
        super()._finalize_state(state)
        if self._synced_this_run and (state is None or state is self.stream_state):
            self.stream_state["synced_bookmark"] = self.stream_state.get("replication_key_value")

    def _note_deletions_from(self, context: Context | None) -> None:
        """A sync that stops before its end leaves a bookmark past the records it read,
        some of them edited after others were deleted: the run that resumes it reads
        deletions from when the stopped one began (`deletions_from`), not from that
        bookmark (nor from a `synced_at` too old for `/v1/recents`, or none, on a first
        sync). Completed, the sync's `synced_at` takes over."""
        started = getattr(self._tap, "run_started_at", None)
        state = self.stream_state
        if (
            self.recents_item
            and context is None
            and started is not None
            and "deletions_from" not in state
        ):
            state["deletions_from"] = format_datetime(started - CLOCK_MARGIN)

    def _warn_of_fields_missing_from_catalog(self) -> None:
        """Custom fields created after the catalog was discovered still arrive (schemas
        allow additional properties), untyped: say so, once per run and stream."""
        layout = self.custom_field_layout
        if (
            layout is None
            or self._input_schema is None
            or not self._first_time("custom fields missing from the catalog")
        ):
            return
        known = set(self._input_schema.get("properties", {}))
        for field in layout.fields:
            if field.column not in known:
                self.logger.warning(
                    "Custom field '%s' (%s) is not in the catalog, probably created after "
                    "discovery: its values arrive untyped in column '%s'; rerun discovery "
                    "to type it",
                    field.name,
                    field.field_type,
                    field.column,
                )

    def _recent_deletions(self, context: Context | None) -> t.Iterator[dict[str, t.Any]]:
        """Records deleted since the bookmark (at most 30 days back: Pipedrive purges them
        then, and `/v1/recents` reaches back one month), as `{id, _sdc_deleted_at}`.

        Their `update_time` stays null: the deletion time may be older than the last
        record listed, and a sorted stream's bookmark must not move backwards.
        """
        changes = self._tap.recent_changes()  # type: ignore[attr-defined]
        if changes is None:
            return
        seen = set()
        for record_id, deleted_at in changes.deleted(self.recents_item):
            if record_id in seen:
                continue
            seen.add(record_id)
            record = {"id": record_id, "_sdc_deleted_at": to_rfc3339(deleted_at) or utc_now_text()}
            if self.replication_key:
                record[self.replication_key] = None
            yield record

    def post_process(
        self,
        row: dict[str, t.Any],
        context: Context | None = None,
    ) -> dict[str, t.Any] | None:
        if self.filter_here and self._older_than_bookmark(row, context):
            return None
        for name in self.datetime_fields:
            value = row.get(name)
            if value is not None:
                row[name] = to_rfc3339(value)
        for path in self.nested_datetime_paths:
            _datetimes_to_rfc3339(row, path)
        layout = self.custom_field_layout
        if layout is not None:
            self.apply_custom_fields(layout, row)
        for name, nested_layout in self.nested_custom_fields.items():
            nested = row.get(name)
            if isinstance(nested, dict):
                nested_layout.apply_v1(nested)
        if self.flags_deletions and "_sdc_deleted_at" not in row:
            deleted = any(row.get(name) == value for name, value in self.deleted_if)
            row["_sdc_deleted_at"] = (row.get("update_time") or utc_now_text()) if deleted else None
        if self.selected:  # a parent walked only for its children sends none
            self._tap.meter.count_record(self.name)  # type: ignore[attr-defined]
        return row

    def _increment_stream_state(
        self, latest_record: dict[str, t.Any], *, context: Context | None = None
    ) -> None:
        """The SDK's, except for records that cannot move the bookmark:
        - a deletion marker, which has no update time (the SDK warned once per marker);
        - a record of the bookmark's own second but earlier within it (`...:01.076` under a
          bookmark of `...:01.664`): Pipedrive's filters take whole seconds, so such a
          record, sent in the run before, comes again, and the SDK's sort check took it for
          unsorted data and stopped every later run with a traceback;
        - a record older than one sent before it in this run: the API did not sort the
          list as asked. It is written as it came and the bookmark keeps the latest time;
          the SDK stopped the run with a traceback, and every run after it at the same
          stream, so that the streams after it never synced again."""
        value = latest_record.get(self.replication_key) if self.replication_key else None
        if value is None:
            return
        floor = self._resent_below
        if (
            floor is not None
            and isinstance(value, str)
            and value[:19] == floor[:19]
            and parse_datetime(value) < parse_datetime(floor)
        ):
            return
        if self._unsorted:
            markers = self.get_context_state(context).get(PROGRESS_MARKERS) or {}
            if isinstance(value, str) and value > (markers.get("replication_key_value") or ""):
                markers["replication_key_value"] = value  # compared as the SDK compares
            return
        try:
            super()._increment_stream_state(latest_record, context=context)
        except InvalidStreamSortException:  # raised before the state is changed
            self._read_unsorted_from_here(context, value)

    def _read_unsorted_from_here(self, context: Context | None, value: t.Any) -> None:
        """The API did not sort the list as asked: records older than the bookmark reached
        may still come. From here on the bookmark reached is a progress marker, as the SDK
        keeps one for an unsorted stream: saved once the stream is read to its end, while a
        STATE written before (every 1,000 records, or a stop) holds the bookmark the run
        started from. Keeping the bookmark reached saved one past records not yet read."""
        state = self.get_context_state(context)
        reached = state.get("replication_key_value")
        state[PROGRESS_MARKERS] = {
            PROGRESS_MARKER_NOTE: "Progress is not resumable if interrupted.",
            "replication_key": self.replication_key,
            "replication_key_value": reached,
        }
        starting = state.get(STARTING_MARKER)
        if starting is None:
            state.pop("replication_key_value", None)
        else:
            state["replication_key_value"] = starting
        self._unsorted = True
        if self._first_time("out of order"):
            self.logger.warning(
                "%s: Pipedrive sent a record updated at %s after a later one, not sorted by "
                "update time as asked: written as it came; the bookmark moves once the list "
                "is read to its end",
                self.name,
                value,
            )

    def _older_than_bookmark(self, row: dict[str, t.Any], context: Context | None) -> bool:
        since = self._filter_since  # read once per sync in get_records, not per record
        value = row.get(self.replication_key) if since is not None else None
        return isinstance(value, str) and bool(value) and parse_datetime(value) < since

    def apply_custom_fields(self, layout: CustomFieldLayout, row: dict[str, t.Any]) -> None:
        layout.apply_v1(row)

    def _normalize_bookmark(self, context: Context | None) -> None:
        """Rewrite a saved bookmark into the canonical timestamp form before it is compared.

        The SDK compares bookmark values as strings; a state written in another format
        (`...Z`, a naive time, another tap's) would otherwise compare wrongly.
        """
        if not self.replication_key or not self.is_timestamp_replication_key:
            return
        state = self.get_context_state(context)
        for holder in (state, state.get("progress_markers") or {}):
            value = holder.get("replication_key_value")
            if isinstance(value, str):
                try:
                    holder["replication_key_value"] = format_datetime(parse_datetime(value))
                except ValueError:
                    holder.pop("replication_key_value", None)


class PrimedPages:
    """A list's pages whose reading began before its turn: the first page and the parts
    after it are requested at once, the pages are read when the stream's turn comes."""

    def __init__(self, pages: t.Iterator[requests.Response]) -> None:
        self._pages = pages
        self._first: list[requests.Response] = []
        self._error: BaseException | None = None
        try:  # the first page is there: this starts the parts and returns at once
            self._first = [next(pages)]
        except StopIteration:
            pass
        except Exception as exc:  # raised when the stream reads it, as it would have been
            self._error = exc

    def __iter__(self) -> t.Iterator[requests.Response]:
        if self._error is not None:
            raise self._error
        yield from self._first
        yield from self._pages

    def close(self) -> None:
        """Stop what is in flight (the run ends before the stream's turn)."""
        close = getattr(self._pages, "close", None)
        if close is not None:
            close()


class PipedriveV1Stream(PipedriveStream):
    """An endpoint of API v1 (`/v1/...`), offset paging."""

    #: Sorted newest first by the replication key (`sort=update_time DESC`), for lists
    #: the API cannot filter by update time: paging stops at the bookmark.
    newest_first: t.ClassVar[bool] = False

    @property
    def url_base(self) -> str:
        return self._roots[0]

    def split_rest(
        self, context: Context | None, first: requests.Response, after_first: t.Any
    ) -> t.Iterator[requests.Response] | None:
        """The next offsets, requested several at once and written in order. Each page
        starts one record before the previous one ends: when that record is not the one
        expected, the list moved under us (a record was edited or deleted) and lists
        sorted by update time re-read from the last record read, one page at a time."""
        return self._offset_pages(context, first, after_first) if self.paginated else None

    def _offset_pages(
        self, context: Context | None, first: requests.Response, after_first: t.Any
    ) -> t.Iterator[requests.Response]:
        keyset = isinstance(after_first, tuple)  # (updated_since, start): sorted by time
        # Offsets count from the start of the list under the run's own filter.
        since = getattr(self.get_new_paginator(), "since", None) if keyset else None
        step = self.page_size - 1
        in_flight: deque[tuple[int, PageChain]] = deque()
        now = dt.datetime.now(UTC)

        def pages_left(page: requests.Response) -> int:
            """For a list sorted by update time, oldest first: the pages still to come,
            guessed from the last page's records per second (so that few requests go
            past the end of the list); else no guess."""
            records = payload_of(page).get("data") or []
            if not keyset or len(records) < 2:
                return self.concurrency
            try:
                first, last = (parse_datetime(records[i][self.replication_key]) for i in (0, -1))
            except (KeyError, TypeError, ValueError):
                return self.concurrency
            per_second = len(records) / max((last - first).total_seconds(), 1.0)
            return 1 + math.ceil(per_second * max((now - last).total_seconds(), 0.0) / step)

        next_start = step
        read_ahead = ReadAhead()
        # Pages are started by the writer as it takes one and by each page as it answers.
        lock = threading.RLock()
        reading = True
        # A page has answered that the list ends there (or reaches the bookmark): every
        # offset not yet requested lies past it, and the writer stops at that page.
        end_seen = False

        def fill(answer: requests.Response | None = None) -> None:
            nonlocal next_start, end_seen
            with lock:
                if not reading or end_seen:
                    return
                if answer is not None and self.get_new_paginator().get_next(answer) is None:
                    end_seen = True
                    self._tap.room_on_wire()  # type: ignore[attr-defined]
                    return
                wanted = min(self.in_flight_wanted() + SPARE_ON_WIRE, self.concurrency)
                chains = [chain for _, chain in in_flight]
                # The guess counts from the page last written: those started since count too.
                not_started = max(pages_left(previous) - len(in_flight), 0)
                for _ in range(min(read_ahead.to_start(chains, wanted), not_started)):
                    token = (since, next_start) if keyset else next_start
                    chain = self.new_chain(
                        context, _OnePage(token), on_page=lambda _, answer: fill(answer)
                    )
                    in_flight.append((next_start, chain))
                    next_start += step
                    chain.start()

        def next_page() -> tuple[int, PageChain] | None:
            with lock:
                return in_flight.popleft() if in_flight else None

        def stop_pending() -> None:
            nonlocal reading
            with lock:
                reading = False
                for _, pending in in_flight:
                    pending.stop()

        def short(answered: int) -> bool:
            """Whether a page that more pages follow held fewer records (`answered`) than
            asked: the server's pages are smaller than `page_size`, and the offsets
            requested ahead would skip the records between. Warned of once."""
            if answered >= self.page_size:
                return False
            if self._first_time("short pages"):
                self.logger.warning(
                    "The API answered %s with pages of %d records where %d were asked: "
                    "reading it one page after another from the offsets it gives.",
                    self.name,
                    answered,
                    self.page_size,
                )
            return True

        # The last update second of the pages written so far, and the ids of its records:
        # if the list is then read in sequence from that second, they are not sent again.
        tie_second: str | None = None
        tie_ids: set[t.Any] = set()

        def written(page: requests.Response) -> None:
            nonlocal tie_second, tie_ids
            data = payload_of(page).get("data") or []
            if not keyset or not data:
                return
            last, tie = _last_second_run(data, t.cast(str, self.replication_key))
            ids = set(tie)
            if len(tie) == len(data) and last == tie_second:  # one second, from before
                ids |= tie_ids
            tie_second, tie_ids = last, ids

        def in_sequence_after(
            page: requests.Response, token: t.Any
        ) -> t.Iterator[requests.Response]:
            """The pages after `page` (asked for with `token`), one after another, the
            pages requested ahead dropped."""
            stop_pending()
            paginator = t.cast(_PipedrivePaginator, self.get_new_paginator())
            paginator.resume_at(token)
            paginator.advance(page)
            if isinstance(paginator, UpdateTimePaginator):
                paginator.already_read(tie_second, tie_ids)
            if not paginator.finished:
                yield from self.new_chain(context, paginator).pages()

        try:
            previous, previous_start = first, 0
            # More pages follow `first` (else the list would not be split).
            if short(len(payload_of(first).get("data") or [])):
                yield first
                yield from in_sequence_after(first, (since, 0) if keyset else 0)
                return
            fill()
            yield first
            written(first)
            while (taken := next_page()) is not None:
                start, chain = taken
                response = next(read_ahead.pages(chain), None)
                if response is None:
                    break
                data = payload_of(response).get("data") or []
                answered = len(data)
                # Whether the list ends here, from the page as answered (a list without
                # paging data ends at a page shorter than asked: the overlap record counts).
                ended = self.get_new_paginator().get_next(response) is None  # or the bookmark
                last_read = (payload_of(previous).get("data") or [None])[-1]
                after = (
                    None
                    if last_read is None
                    else after_overlap(data, self.row_identity(last_read), self.row_identity)
                )
                # A list sorted oldest first takes only its overlap record first: anything
                # else means it moved. Newest first, records may come in ahead of it.
                if after is not None and (not keyset or len(after) == len(data) - 1):
                    payload_of(response)["data"] = data = after
                elif keyset:  # the list moved: re-read from the last record, in sequence
                    yield from in_sequence_after(previous, (since, previous_start))
                    return
                elif last_read is not None:  # one went missing: it may have been passed over
                    self.list_moved()
                if not ended and short(answered):
                    yield response
                    yield from in_sequence_after(response, (since, start) if keyset else start)
                    return
                if not ended:
                    fill()  # the writer took a page: room for one more
                yield response
                if ended:
                    break
                written(response)
                previous, previous_start = response, start
                fill()
        finally:
            stop_pending()

    def get_new_paginator(self) -> BaseAPIPaginator[t.Any] | None:
        if not self.paginated:
            return None
        if self.is_sorted and self.replication_key and self.updated_since_param:
            since = self.get_starting_timestamp(self.context)
            return UpdateTimePaginator(
                self.page_size, self.replication_key, to_query_timestamp(since) if since else None
            )
        if self.newest_first and self.replication_key:
            since = self.get_starting_timestamp(self.context)
            return NewestFirstPaginator(
                self.page_size, self.replication_key, since, on_moved=self.list_moved
            )
        return OffsetPaginator(self.page_size)

    def get_url_params(
        self,
        context: Context | None,
        next_page_token: t.Any,
    ) -> dict[str, t.Any]:
        params = super().get_url_params(context, next_page_token)
        if isinstance(next_page_token, tuple):
            params[self.updated_since_param], params["start"] = next_page_token
        elif self.paginated:
            params["start"] = next_page_token or 0
        return params


class PipedriveV2Stream(PipedriveStream):
    """An endpoint of API v2 (`/api/v2/...`), cursor paging."""

    api_version = "v2"
    #: Optional fields the endpoint adds when asked (`include_fields`); the schemas list them.
    include_fields: t.ClassVar[tuple[str, ...]] = ()
    #: The endpoint's `<` update-time filter, if it has one. A long list sorted by update
    #: time is read as time windows, several in flight at once, written one after the
    #: other; without this filter each window's cursor stops at the first page past its
    #: end, which costs the same requests (that page is the window's last either way).
    updated_until_param: t.ClassVar[str | None] = None
    #: Records a window is sized for: most windows then fit one page of 500.
    window_target: t.ClassVar[int] = 400

    @property
    def windowed(self) -> bool:
        """Whether the list can be read as update-time windows: filtered from a time on
        (`updated_since`) and sorted by update time."""
        return bool(self.updated_since_param and self.is_sorted)

    @property
    def reads_in_sequence(self) -> bool:
        """Without windows, a v2 list has only its cursor."""
        return self.paginated and not self.windowed

    def split_rest(
        self, context: Context | None, first: requests.Response, after_first: t.Any
    ) -> t.Iterator[requests.Response] | None:
        """The rest of the list as time windows fetched side by side and written in order,
        so records still leave sorted by update time and the bookmark stays resumable;
        None without an `updated_since` filter or if the page is not sorted as asked."""
        if not self.windowed:
            return None
        until = dt.datetime.now(UTC).replace(microsecond=0) + dt.timedelta(seconds=1)
        windows = self._windows_after(first, until)
        return None if windows is None else self._window_pages(context, first, windows)

    def _window_pages(
        self, context: Context | None, first: requests.Response, windows: TimeWindows
    ) -> t.Iterator[requests.Response]:
        # The windows begun or due, in the order they are written: a window's chain is
        # started when there is room on the wire, earliest first.
        in_flight: deque[_WindowRead] = deque()
        # Windows are started by the writer as it takes a page and by each window as it
        # answers: waiting for the writer to drain windows that came back together before
        # sending more would leave the burst limit unused.
        lock = threading.RLock()
        reading = True
        # Where the list ends: one record, newest first. Windows stop there instead of
        # running on, empty, to the run's start (the last window is open-ended anyway).
        newest = self.new_chain(
            context,
            _OnePage(_NEWEST),
            on_page=lambda _, response: windows.end_before(self._newest_time(payload_of(response))),
        ).start()

        def answered(read: _WindowRead, number: int, response: requests.Response) -> None:
            """A page of a window is in (called from its chain's thread): learn the
            density from a first page, and split the rest of the window off if it holds
            more than its cursor should read one page after another."""
            with lock:
                payload = payload_of(response)
                if number == 1:
                    windows.observe_page(read.window, payload, self.replication_key)
                parts = split_overflow(
                    read.window, payload, self.replication_key, end=windows.until
                )
                if parts and reading and read.chain is not None:
                    read.chain.end_here()
                    at = next((i for i, due in enumerate(in_flight) if due is read), -1)
                    for offset, part in enumerate(parts, start=at + 1):
                        in_flight.insert(offset, _WindowRead(part, split_off=True))
                fill()

        def start(read: _WindowRead) -> PageChain:
            read.chain = self.new_chain(
                context,
                WindowPaginator(read.window, t.cast(str, self.replication_key)),
                depth=2,  # a window's second page, if any, follows its first
                on_page=lambda number, response: answered(read, number, response),
            )
            return read.chain.start()

        def fill() -> None:
            with lock:
                if not reading:
                    return
                wanted = min(self.in_flight_wanted() + SPARE_ON_WIRE, self.concurrency)
                # Windows split off are written before any window begun after them: they
                # go on the wire first, whatever pages of those later ones already wait,
                # and are held to `PAGES_WAITING` begun of their own.
                on_wire = sum(1 for due in in_flight if due.chain and not due.chain.has_page())
                parts_begun = sum(1 for due in in_flight if due.split_off and due.chain)
                for due in in_flight:
                    if on_wire >= wanted or parts_begun >= PAGES_WAITING:
                        break
                    if due.chain is None:
                        start(due)
                        on_wire += 1
                        parts_begun += 1
                started = [due.chain for due in in_flight if due.chain is not None]
                for _ in range(windows_to_start(started, wanted)):
                    window = windows.next()
                    if window is None:
                        self._tap.room_on_wire()  # type: ignore[attr-defined]
                        return
                    read = _WindowRead(window)
                    in_flight.append(read)
                    start(read)

        def next_window() -> tuple[Window, PageChain] | None:
            with lock:
                if not in_flight:
                    return None
                read = in_flight.popleft()
                return read.window, read.chain or start(read)

        try:
            fill()
            yield first
            while (taken := next_window()) is not None:
                window, chain = taken
                pages = chain.pages()
                for response in pages:
                    fill()  # the writer took a page: room for another
                    data = payload_of(response).get("data") or []
                    if window.skip_ids:
                        key = t.cast(str, self.replication_key)
                        data = [row for row in data if not window.read_before(row, key)]
                    data, past_the_end = self._inside(window, data)
                    payload_of(response)["data"] = data
                    yield response
                    if past_the_end:  # the window's records are all read
                        pages.close()
                        break
        finally:
            with lock:
                reading = False
                for due in in_flight:
                    if due.chain is not None:
                        due.chain.stop()
            newest.stop()

    def _inside(
        self, window: Window, data: list[dict[str, t.Any]]
    ) -> tuple[list[dict[str, t.Any]], bool]:
        """The records of `data` that belong to `window`, and whether the page went past
        its end. Pipedrive applies both bounds; a server that ignores one would otherwise
        have every window read the records of its neighbours again, written twice and out
        of order. A record inside the page but outside the window was edited while the
        page was put together (selected at its old update time, sent with the new one):
        it is left out, to a later window or the next run, not written out of order (the
        SDK would stop the run)."""
        key = self.replication_key
        if not data or not key:
            return data, False

        def inside(row: dict[str, t.Any]) -> bool:
            try:
                time = parse_datetime(row[key])
            except (KeyError, TypeError, ValueError):
                return True  # no time to place it by: as the API sent it
            return time >= window.since and (window.until is None or time < window.until)

        try:
            first = parse_datetime(data[0][key])
            past = window.until is not None and reaches_past(data, key, window.until)
        except (KeyError, TypeError, ValueError):
            return data, False
        before = first < window.since
        if not (before or past):
            kept = [row for row in data if inside(row)]
            if len(kept) < len(data) and self._first_time("edited mid-page"):
                self.logger.info(
                    "%s: a page held records updated while it was read, outside its time "
                    "window; they are read with their new update time, later",
                    self.name,
                )
            return kept, False
        ignored = "updated_since" if before else "updated_until"
        if (before or self.updated_until_param) and self._first_time(f"ignored {ignored}"):
            self.logger.warning(
                "The API ignored `%s` for a time window of %s: records outside the window "
                "are left to their own window (each written once, in order), at the cost "
                "of more requests.",
                ignored,
                self.name,
            )
        return [row for row in data if inside(row)], past

    def _newest_time(self, payload: dict[str, t.Any]) -> dt.datetime | None:
        records = payload.get("data") or []
        try:
            return parse_datetime(records[0][self.replication_key]) if records else None
        except (KeyError, TypeError, ValueError):
            return None

    def _windows_after(self, response: requests.Response, until: dt.datetime) -> TimeWindows | None:
        records = payload_of(response).get("data") or []
        try:
            times = [parse_datetime(row[self.replication_key]) for row in records]
        except (KeyError, TypeError, ValueError):
            return None
        if not times or times != sorted(times):
            return None
        return TimeWindows.after_page(
            times, [row.get("id") for row in records], until, target=self.window_target
        )

    @property
    def url_base(self) -> str:
        return self._roots[1]

    def get_new_paginator(self) -> BaseAPIPaginator[t.Any] | None:
        return CursorPaginator()

    def apply_custom_fields(self, layout: CustomFieldLayout, row: dict[str, t.Any]) -> None:
        layout.apply_v2(row)

    def get_url_params(
        self,
        context: Context | None,
        next_page_token: t.Any,
    ) -> dict[str, t.Any]:
        params = super().get_url_params(context, next_page_token)
        if self.include_fields:
            params["include_fields"] = ",".join(self.include_fields)
        if next_page_token == _NEWEST:
            params.update(sort_direction="desc", limit=1)
            return params
        if isinstance(next_page_token, tuple):  # (window, cursor)
            window, next_page_token = next_page_token
            params[self.updated_since_param] = to_query_timestamp(window.since)
            if window.until is not None and self.updated_until_param:
                params[self.updated_until_param] = to_query_timestamp(window.until)
        if next_page_token:
            params["cursor"] = next_page_token
        return params


def _drop_flattened_away_nulls(record: dict[str, t.Any], stream_map: t.Any) -> None:
    """Flattening turns an object into a column per property (`person__org_id__name`),
    but the SDK keeps a null object as one column the SCHEMA does not have
    (`person__org_id: null`). Such nulls go (a column absent is null to a target), as do
    those of properties the SCHEMA does not declare: the records keep to their SCHEMA."""
    columns = stream_map.__dict__.get("_tap_columns")
    if columns is None:
        columns = frozenset(stream_map.transformed_schema.get("properties") or {})
        stream_map.__dict__["_tap_columns"] = columns
    for key in [k for k, v in record.items() if v is None and k not in columns]:
        del record[key]


class RecentsStream(PipedriveV1Stream):
    """`/v1/recents` for some item types since a time (see `tap_pipedrive.recents`). Not a
    stream of its own: the tap reads it once a run; its requests count as `recents`."""

    name = "recents"
    path = "/recents"

    def __init__(self, tap: t.Any, *, items: t.Iterable[str], since: dt.datetime) -> None:
        super().__init__(tap=tap)
        self.items, self.since = ",".join(sorted(items)), since

    @cached_property
    def schema(self) -> dict[str, t.Any]:  # type: ignore[override]
        return {"type": "object", "properties": {}, "additionalProperties": True}

    def first_chain(self, context: Context | None) -> PageChain | PrimedPages:
        """Read when first needed, which is before the streams' first pages are planned
        (planning asks which streams it reports unchanged)."""
        return self.plain_chain(context)

    def get_new_paginator(self) -> BaseAPIPaginator[t.Any] | None:
        return OverlappingOffsetPaginator(
            self.page_size, on_moved=self.list_moved, identity=self.row_identity
        )

    @staticmethod
    def row_identity(row: dict[str, t.Any]) -> t.Any:
        """Rows of different item types share ids (deal 5, person 5)."""
        return (row.get("item"), row.get("id"))

    def list_moved(self) -> None:
        """Changes listed while the list was read: `moved`, for the tap to read it again
        (there is no bookmark to keep, and the tap warns if it keeps moving)."""
        self.moved = True

    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict[str, t.Any]:
        params = super().get_url_params(context, next_page_token)
        params["since_timestamp"] = self.since.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
        if "," not in self.items:
            # One type is named; several are not: the spec types `items` as one enum value,
            # and a server reading it so matches none of a comma list (an empty listing:
            # every stream skipped as unchanged, no deletion flagged). Unnamed, every type
            # is listed, and `RecentChanges` keeps the types asked for.
            params["items"] = self.items
        return params


class UpdatedSinceMixin:
    """Incremental by `update_time`, filtered server-side and sorted ascending, so a run
    that dies midway resumes from its last STATE without losing a record."""

    replication_key = "update_time"
    is_sorted = True
    updated_since_param = "updated_since"


logging.getLogger("urllib3").setLevel(logging.WARNING)


class _KnownUnsortedFilter(logging.Filter):
    """Drops the SDK's "Stream is assumed to be unsorted" WARNING: it names no stream, and
    for the lists read newest first it is the design, said by the stream at INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Stream is assumed to be unsorted")


def quiet_known_unsorted_warning() -> None:
    """Install `_KnownUnsortedFilter` on the SDK's logger, once."""
    sdk_logger = logging.getLogger("singer_sdk")
    if not any(isinstance(f, _KnownUnsortedFilter) for f in sdk_logger.filters):
        sdk_logger.addFilter(_KnownUnsortedFilter())
