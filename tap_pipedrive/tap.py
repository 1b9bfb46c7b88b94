"""The tap: its settings, their validation, the stream list and the CLI entry point."""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import decimal
import json
import logging
import math
import os
import re
import signal
import sys
import threading
import time
import typing as t
from concurrent.futures import Future
from types import FrameType

import requests
from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.configuration._dict_config import parse_environment_config
from singer_sdk.exceptions import ConfigValidationError, MappingError, RetriableAPIError
from singer_sdk.helpers._classproperty import classproperty

from tap_pipedrive.budget import TokenCapReached, TokenMeter
from tap_pipedrive.client import (
    SCHEMAS,
    PipedriveStream,
    PrimedPages,
    RecentsStream,
    api_roots,
    deletion_marker_made_automatic,
    quiet_known_unsorted_warning,
)
from tap_pipedrive.custom_fields import (
    NAME_MODES,
    CustomFieldLayout,
    build_custom_fields,
    described_columns,
)
from tap_pipedrive.errors import (
    ApiError,
    ConfigError,
    ConnectionFailed,
    PipedriveError,
    RunHalted,
    Stopped,
    UnavailableError,
)
from tap_pipedrive.inputs import check_cli_files, unwrap_state
from tap_pipedrive.pacing import Pacer
from tap_pipedrive.pipeline import tune_malloc
from tap_pipedrive.recents import RecentChanges, reach_floor
from tap_pipedrive.streams import STREAM_TYPES, replication_keys
from tap_pipedrive.streams.fields import FIELDS_STREAM_OF
from tap_pipedrive.timeutil import UTC, format_datetime, parse_datetime
from tap_pipedrive.writer import BufferedSingerWriter, target_stopped_reading

T = t.TypeVar("T")
#: Reads of `/v1/recents` a run makes while it changes as it is read.
RECENTS_READS = 3

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context
    from singer_sdk.singerlib import Catalog
    from singer_sdk.streams import Stream

    from tap_pipedrive.pipeline import PageChain

DEFAULT_CONCURRENCY = 8
#: First pages of the next streams requested ahead: each waits in memory for its turn.
HEADS_AHEAD = 4
#: Lists Pipedrive has for every account, whatever its plan or the token user's rights:
#: one answering 404 is not a feature the account lacks.
LISTS_EVERY_ACCOUNT_HAS = frozenset(
    {"users", "activity_types", "currencies", "filters", "activities", "notes", "deals",
     "persons", "organizations", "pipelines", "stages"}
)  # fmt: skip
#: Of those, how many answering 404 before any request succeeded stop the run.
CORE_LISTS_NOT_FOUND_TO_STOP = 2
_NOTHING_SUCCEEDED = (
    "no request of this run succeeded: check api_url and that the token's user may use the API"
)
MAX_CONCURRENCY = 64
#: `_recent_changes` before `/v1/recents` is read.
_UNREAD = object()


class TapPipedrive(Tap):
    """Singer tap for Pipedrive CRM."""

    name = "tap-pipedrive"
    message_writer_class = BufferedSingerWriter
    #: The catalog depends on the account (its custom fields): `--discover` then checks
    #: the settings as a sync does, one line for a wrong one, instead of trying them.
    dynamic_catalog = True

    config_jsonschema = th.PropertiesList(
        th.Property(
            "api_key",
            th.StringType,
            required=True,
            secret=True,
            title="API token",
            description=(
                "Pipedrive API token (Personal preferences > API). Sent only in the "
                "x-api-token header. `api_token` is accepted as an alias."
            ),
        ),
        th.Property(
            "api_token",
            th.StringType,
            secret=True,
            description="Alias of `api_key`, for configs written for singer-io's tap-pipedrive.",
        ),
        th.Property(
            "start_date",
            th.StringType,
            required=True,
            title="Start date",
            description=(
                "Sync records updated at or after this ISO 8601 date or date-time, e.g. "
                "2024-05-01T00:00:00Z. A time without a zone means UTC."
            ),
        ),
        th.Property(
            "company_domain",
            th.StringType,
            description=(
                "Your Pipedrive company domain, e.g. `acme` for acme.pipedrive.com. Requests "
                "then go to https://acme.pipedrive.com/api, as Pipedrive recommends."
            ),
        ),
        th.Property(
            "api_url",
            th.StringType,
            description=(
                "Base URL override (proxies, the sandbox): a host such as "
                "https://api.pipedrive.com (v1 under /v1, v2 under /api/v2) or a company API "
                "root such as https://acme.pipedrive.com/api (v1 under /api/v1, v2 under "
                "/api/v2). Takes precedence over company_domain."
            ),
        ),
        th.Property(
            "custom_field_names",
            th.StringType,
            default="key",
            allowed_values=list(NAME_MODES),
            description=(
                "Column names of custom fields: `key`, Pipedrive's 40-character field key "
                "(stable, the default), or `name`, the field's name in snake_case (a name "
                "that collides with another column gets `_` and the key's first 8 characters)."
            ),
        ),
        th.Property(
            "custom_field_labels",
            th.BooleanType,
            default=True,
            description=(
                "Add `<column>_label` (single option) and `<column>_labels` (multiple "
                "options) columns with the option labels beside the option ids."
            ),
        ),
        th.Property(
            "max_tokens_per_run",
            th.IntegerType,
            description=(
                "Stop before this run spends more API tokens than this (Pipedrive's daily "
                "budget is shared by all of the company's integrations). The run then emits "
                "a resumable state and the next run goes on from there. Default: no cap."
            ),
        ),
        th.Property(
            "max_concurrent_requests",
            th.IntegerType,
            default=DEFAULT_CONCURRENCY,
            description=(
                "Requests kept in flight at once (1 = one at a time). They are spaced under "
                "the token's burst limit (x-ratelimit-limit per 2 s) whatever this is, so "
                "more concurrency hides latency but never sends faster than the limit."
            ),
        ),
        th.Property(
            "request_timeout",
            th.NumberType,
            default=60,
            description="Seconds to wait for Pipedrive to answer one request before retrying.",
        ),
        th.Property(
            "user_agent",
            th.StringType,
            description="User-Agent header to send (default `tap-pipedrive/<version>`).",
        ),
    ).to_dict()

    @classproperty
    def _env_var_config(cls) -> dict[str, t.Any]:
        """Settings from `TAP_PIPEDRIVE_*` (and `.env`), the SDK's own ones included, a
        value that is not of its setting's type named in one line: the SDK raised a
        traceback for a number or JSON it could not read, and took any word but `true`,
        `1`, `yes`, `on` as false."""
        schema = cls.config_jsonschema
        cls.append_builtin_config(schema)
        try:
            parsed: dict[str, t.Any] | None = parse_environment_config(schema, cls._env_var_prefix)
        except ValueError:
            parsed = None
        for name, setting in schema["properties"].items():
            variable = cls._env_var_prefix + name.upper().replace("-", "_")
            raw = os.environ.get(variable)
            types = setting.get("type") or []
            types = [types] if isinstance(types, str) else types
            if raw is None:
                continue
            if "integer" in types and not re.fullmatch(r"\s*[+-]?\d+\s*", raw):
                raise ConfigError(f"Environment variable {variable}={raw!r} is not a whole number")
            if "number" in types and "integer" not in types and parsed is not None:
                if not _is_number(raw):
                    raise ConfigError(f"Environment variable {variable}={raw!r} is not a number")
                parsed[name] = float(raw)  # the SDK leaves it a string
            if "boolean" in types and raw.lower() not in BOOLEAN_WORDS:
                raise ConfigError(f"Environment variable {variable}={raw!r} is not true or false")
            if "object" in types:
                try:
                    json.loads(raw)
                except ValueError as exc:
                    raise ConfigError(
                        f"Environment variable {variable} is not a JSON object: {exc}"
                    ) from None
        if parsed is None:
            raise ConfigError(f"A {cls._env_var_prefix}* environment variable cannot be read")
        return parsed

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        self._custom_field_layouts: dict[str, CustomFieldLayout] = {}
        self._field_definitions: dict[str, list[dict[str, t.Any]]] = {}
        #: Why each entity's field definitions could not be read, if they could not.
        self._definitions_failed: dict[str, ApiError] = {}
        #: Streams skipped because Pipedrive refused their list, and its answer.
        self._unavailable: dict[str, str] = {}
        self._unavailable_lock = threading.Lock()
        self.meter = TokenMeter()
        self.pacer = Pacer()
        quiet_known_unsorted_warning()
        super().__init__(*args, **kwargs)
        self._normalize_config()
        self.meter.cap = self.config.get("max_tokens_per_run")

    #: The fatal error that stopped the run's requests, if any.
    halted: BaseException | None = None
    #: What `/v1/recents` listed this run (None: nothing to read, or it failed).
    _recent_changes: RecentChanges | object | None = _UNREAD
    #: `/v1/recents` being read beside the first pages (begun by `_plan_heads`).
    _recents_reading: Future[RecentChanges | None] | None = None

    #: Whether any request of the run was answered 2xx: if none was, a refused list is
    #: not a feature the account lacks but a wrong `api_url` or a token without access.
    api_answered: bool = False
    #: When the first refused connection of the run came (monotonic), if any.
    _first_refused: float | None = None

    def refused_for(self) -> float:
        """A connection was refused: for how many seconds connections have been refused,
        from the first refusal since the last answer of any kind, across every thread."""
        now = time.monotonic()
        if self._first_refused is None:
            self._first_refused = now
        return now - self._first_refused

    def connection_answered(self) -> None:
        """An answer came, whatever its status: something listens there."""
        self._first_refused = None

    def halt(self, error: BaseException) -> None:
        """Send no further request: one of them failed for good."""
        if self.halted is None:
            self.halted = error

    #: Whether a signal has stopped the run.
    _stopping: bool = False

    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        """SIGTERM or SIGINT: stop as a fatal error does. The SDK's own handler writes the
        state as it stands (the deals bookmark past products not yet written) and exits 0,
        as if the run had finished. Raised in the main thread, the stop goes through
        `sync_all`, which writes the state less what is still owed and halts every thread's
        requests. A second signal ends the process at once."""
        if self._stopping:
            sys.stderr.write("tap-pipedrive: stopped at once by a second signal\n")
            sys.stderr.flush()
            os._exit(128 + signum)
        self._stopping = True
        stopped = Stopped(signum)
        self.halt(stopped)
        writer = self.message_writer
        if getattr(writer, "writing", False):  # raised when the block is out whole
            writer.stop_after_write = stopped  # type: ignore[attr-defined]
            return
        raise stopped

    @property
    def concurrency(self) -> int:
        return int(self.config.get("max_concurrent_requests") or DEFAULT_CONCURRENCY)

    def in_flight_wanted(self) -> int:
        """Requests to keep in flight now: as many as the round trip needs to reach the
        burst limit, within `max_concurrent_requests`."""
        return self.pacer.requests_to_keep_in_flight(self.concurrency)

    def sync_all(self) -> None:
        """Sync, then log what the run cost. On a fatal stop, first emit the state reached,
        so that the next run resumes from there instead of starting over."""
        #: First pages requested ahead, by `_head_key`: the stream, its context, the chain.
        self._heads: dict[str, tuple[PipedriveStream, Context | None, PageChain]] = {}
        self._head_plan: list[tuple[str, PipedriveStream, Context | None]] | None = None
        self._primed: dict[str, PrimedPages] = {}
        #: Streams whose turn has come: what is left of their first pages is stale.
        self._turns_taken: set[str] = set()
        #: The last first page of a partitioned stream handed to it, by stream name: until
        #: it answers, its other partitions are not requested ahead.
        self._partition_taken: dict[str, PageChain] = {}
        self._priming = threading.Lock()
        self._writer = threading.get_ident()
        self.run_started_at = dt.datetime.now(UTC)
        self._recent_changes = _UNREAD
        self._recents_reading = None
        tune_malloc()
        try:
            super().sync_all()
            self._report_unavailable()
        except (
            PipedriveError,
            RetriableAPIError,
            requests.exceptions.RequestException,
            RunHalted,
        ) as exc:
            # The state reached, less what a stream still owes its dependants (deals
            # whose products are not written yet): resumed, those are read again.
            state = copy.deepcopy(self.state)
            for stream in self.streams.values():
                stream.hold_back(state)
            self._state_writer.write_state(state)
            if isinstance(exc, RunHalted) and self.halted is not None:
                raise self.halted from None  # the failure that halted the run
            raise
        finally:
            # Records written after the last STATE (a stop mid-stream) still reach stdout.
            with contextlib.suppress(OSError, ValueError):
                self.message_writer.flush()  # type: ignore[attr-defined]
            for _, _, head in self._heads.values():
                head.stop()
            self._heads.clear()
            for primed in self._primed.values():
                primed.close()
            self._primed.clear()
            for line in self.meter.summary_lines():
                self.logger.info("API usage: %s", line)

    # -- streams Pipedrive refuses -------------------------------------------------------

    def is_unavailable(self, stream: Stream) -> bool:
        return stream.name in self._unavailable

    def skip_unavailable(self, stream: Stream, error: ApiError) -> None:
        """Skip a stream whose list Pipedrive refused at its first page (403, 404, 410):
        a feature the company's plan lacks (projects, goals) or a token whose user may not
        read it must not stop every other stream. Its bookmark stays where it was."""
        answer = _one_line(error)
        with self._unavailable_lock:
            first_time = stream.name not in self._unavailable
            self._unavailable.setdefault(stream.name, answer)
        if first_time:
            self.logger.warning(
                "Stream '%s' skipped: %s. The other streams go on; deselect it to stop this "
                "warning",
                stream.name,
                answer,
            )

    def list_not_found(self, stream: Stream, error: ApiError) -> None:
        """A list answered 404 at its first page. Lists every Pipedrive account has
        (`LISTS_EVERY_ACCOUNT_HAS`) answering 404 before any request succeeded are a
        wrong api_url: stop now with the line `_report_unavailable` would end the run
        with, not after every other stream was tried and skipped with a warning each."""
        if self.api_answered or stream.name not in LISTS_EVERY_ACCOUNT_HAS:
            return
        with self._unavailable_lock:
            self._core_lists_not_found += 1
            enough = self._core_lists_not_found >= CORE_LISTS_NOT_FOUND_TO_STOP
        if enough:
            raise UnavailableError(f"{_one_line(error)}; {_NOTHING_SUCCEEDED}")

    _core_lists_not_found = 0

    def _report_unavailable(self) -> None:
        """Name the skipped streams once more at the end; if no request of the run was
        answered at all, the cause is the setup, not the account's plan: stop, non-zero."""
        if not self._unavailable:
            return
        if not self.api_answered:
            first = next(iter(self._unavailable.values()))
            raise UnavailableError(f"{first}; {_NOTHING_SUCCEEDED}")
        self.logger.warning(
            "%d selected stream(s) skipped, refused by Pipedrive: %s",
            len(self._unavailable),
            ", ".join(sorted(self._unavailable)),
        )

    # -- /v1/recents, read once -----------------------------------------------------------

    def recent_changes(self) -> RecentChanges | None:
        """What `/v1/recents` lists for every selected stream that needs it, read once per
        run, from the earliest time any of them needs; None if it cannot be read (then
        deletions are skipped and no stream is skipped). Begun as the first stream
        requests its first page (`_plan_heads`), or read here if needed before."""
        if self._recents_reading is not None:
            reading, self._recents_reading = self._recents_reading, None
            self._recent_changes = reading.result()  # a fatal error is raised here
        if self._recent_changes is _UNREAD:
            self._recent_changes = self._read_recents(self._recents_to_read())
        return t.cast("RecentChanges | None", self._recent_changes)

    def _start_reading_recents(self) -> None:
        """Begin reading `/v1/recents` beside the first streams' pages, before any stream
        has moved its bookmark: read from the bookmark a stream had reached, it would miss
        what was deleted before that stream's newest edit."""
        plan = self._recents_to_read()
        if plan is None or self.concurrency <= 1:  # nothing to read, or nothing runs ahead
            self._recent_changes = self._read_recents(plan)
        else:
            self._recents_reading = in_background("recents", self._read_recents, plan)

    def _recents_to_read(self) -> tuple[frozenset[str], dt.datetime] | None:
        """The item types to ask `/v1/recents` for, and from when: the earliest time any
        selected stream needs (at most a month back, all it keeps); None if none needs it."""
        items: set[str] = set()
        since: list[dt.datetime | None] = []
        for stream in self.streams.values():
            if not isinstance(stream, PipedriveStream) or not stream.selected:
                continue
            needs = stream.recents_since()
            if needs is not None:
                items |= needs[0]
                since.append(needs[1])
        if not items:
            return None
        floor = reach_floor()
        start = floor if None in since else max(floor, min(t.cast(list[dt.datetime], since)))
        return frozenset(items), start

    def _read_recents(
        self, plan: tuple[frozenset[str], dt.datetime] | None
    ) -> RecentChanges | None:
        if plan is None:
            return None
        items, start = plan
        changes = RecentChanges(since=start, items=items)
        try:
            # A listing that moved while it was read (an edit sends a change to its end)
            # may have passed one over: read it again; what was read is kept, once.
            for _ in range(RECENTS_READS):
                recents = RecentsStream(self, items=items, since=start)
                for entry in recents.request_records(None):
                    changes.add(entry)
                if not recents.moved:
                    return changes
        except ApiError as exc:
            self.logger.warning(
                "Cannot read /v1/recents (%s): deletions are not flagged this run", exc
            )
            return None
        self.logger.warning(
            "/v1/recents changed while it was read, %d times: no stream is skipped as "
            "unchanged this run",
            RECENTS_READS,
        )
        changes.complete = False
        return changes

    # -- first pages, requested ahead ---------------------------------------------------

    def _plan_heads(self) -> None:
        """List the first request of every stream the run will read, in the order it reads
        them, and start the first few: each stream's first page is then on its way before
        its turn comes, instead of one round trip after another (most streams are one page).
        """
        self._heads = {}
        self._head_plan = []
        if self._recent_changes is _UNREAD and self._recents_reading is None:
            self._start_reading_recents()
        if self.concurrency <= 1:
            return
        planned: set[str] = set()

        entity_of_fields = {cls.name: entity for entity, cls in FIELDS_STREAM_OF.items()}

        def plan(stream: PipedriveStream, context: Context | None) -> None:
            key = _head_key(stream.name, context)
            if entity_of_fields.get(stream.name) in self._field_definitions:
                return  # already read (for the catalog's schemas): served from memory
            if key not in planned:
                planned.add(key)
                self._head_plan.append((key, stream, context))

        for stream in self.streams.values():
            if not isinstance(stream, PipedriveStream) or stream.parent_stream_type:
                continue
            if not (stream.selected or stream.has_selected_descendents):
                continue
            entity = stream.custom_field_entity
            if entity and entity in FIELDS_STREAM_OF:
                fields_stream = self.streams[FIELDS_STREAM_OF[entity].name]
                plan(t.cast(PipedriveStream, fields_stream), None)
            if stream.partitions is None and stream.reported_unchanged(None):
                continue  # it will be skipped: nothing to request ahead
            for context in stream.partitions or [None]:
                plan(stream, context)
        # Lists read in sequence (a page per round trip) start at once against a distant
        # API, `SEQUENCE_AHEAD` pages each, beside the heads ahead: their turn may come
        # last, with nothing beside them to keep the wire busy.
        for entry in [e for e in self._head_plan if e[1].read_ahead_from_the_start]:
            self._head_plan.remove(entry)
            key, stream, context = entry
            self._heads[key] = (stream, context, stream.head_chain(context).start())
        self._head_plan.reverse()  # popped from the end
        self._start_next_heads()

    def _start_next_heads(self) -> None:
        def ahead() -> int:  # lists read ahead from the start are beyond the count
            return sum(
                1 for stream, _, _ in self._heads.values() if not stream.read_ahead_from_the_start
            )

        # As many as the round trip needs in flight: one next door, where more would
        # only wait in memory.
        most = min(HEADS_AHEAD, self.in_flight_wanted())
        while self._head_plan and ahead() < most:
            key, stream, context = self._head_plan[-1]
            answer = self._partitions_answer(stream)
            if answer == "pending":
                break  # started once it answers (the writer's next page)
            self._head_plan.pop()
            if answer == "failed" or (stream.name in self._turns_taken and not stream.partitions):
                continue  # refused: the stream reads nothing more; or it reads its own
            self._heads[key] = (stream, context, stream.head_chain(context).start())
        self._start_next_long_list()

    def _partitions_answer(self, stream: PipedriveStream) -> str | None:
        """Whether another partition of `stream` may be requested ahead: "failed" if the
        stream was refused or a first page started ahead answered an error (the stream
        then reads no other partition: goals answering 404 cost six requests, not one),
        "pending" while those started wait for their first answer, else None."""
        if self.is_unavailable(stream):
            return "failed"
        started = [head for other, _, head in self._heads.values() if other is stream]
        taken = self._partition_taken.get(stream.name)
        answers = [head.first_answer() for head in [*started, *([taken] if taken else [])]]
        if any(answer not in (None, "page") for answer in answers):
            return "failed"
        if answers and all(answer is None for answer in answers):
            return "pending"
        return None

    def _start_next_long_list(self) -> None:
        """Keep the first page of the next long list on its way, out of turn if the heads
        ahead are short lists: `room_on_wire` can begin a list's parts only once its first
        page is in. Counted among the heads ahead, a long list behind six short ones (or
        behind a stream whose partitions all fail) was requested only at its turn, a
        round trip and more of idle wire at every change of stream."""
        if not self._head_plan:
            return
        for stream, _, head in self._heads.values():
            answer = head.first_answer()
            if stream.may_be_long and (
                answer is None or (answer == "page" and not head.paginator.finished)
            ):
                return  # a long list's first page is on its way, or in and not the last
        for index in range(len(self._head_plan) - 1, -1, -1):  # popped from the end
            key, stream, context = self._head_plan[index]
            if stream.may_be_long and stream.name not in self._turns_taken:
                del self._head_plan[index]
                self._heads[key] = (stream, context, stream.head_chain(context).start())
                return

    def _on_writer(self) -> bool:
        """Whether this is the thread that writes the messages (and the state): the only
        one that may start a first page, which settles its stream's bookmark in the state.
        `/v1/recents` and the field definitions are read on threads of their own."""
        return threading.get_ident() == getattr(self, "_writer", None)

    def keep_heads_ahead(self) -> None:
        """The writer took a page: start the first pages that were waiting on an answer
        (a stream's other partitions) or on a long list turning out short."""
        if not (getattr(self, "_head_plan", None) and self._on_writer()):
            return
        if self._priming.acquire(blocking=False):
            try:
                self._start_next_heads()
            finally:
                self._priming.release()

    def room_on_wire(self) -> None:
        """The stream being read has started the last of its parts: its wire winds down
        over the next round trip. Start the parts of the next long list now, so that the
        burst limit is not left idle while the writer finishes this one (a round trip
        lost at every change of stream). One list at a time: what it fetches waits in
        memory, bounded as a stream's own parts are, until its turn comes."""
        if not hasattr(self, "_heads") or not self._priming.acquire(blocking=False):
            return
        try:
            if self._primed or self.halted is not None:
                return
            for key, (stream, context, head) in list(self._heads.items()):
                if head.first_answer() != "page":
                    continue  # not in yet, or an error the stream raises at its turn
                if (
                    head.paginator.finished
                    or stream.reads_in_sequence
                    or not stream.splits_pay_off()
                ):
                    continue  # one page, or read as one chain: nothing to start early
                # The next heads are started by the writer's thread (`take_head`): starting
                # one settles its stream's bookmark in the state the writer serialises.
                del self._heads[key]
                self._primed[key] = stream.prime(context, head)
                return
        finally:
            self._priming.release()

    def take_head(
        self, stream: PipedriveStream, context: Context | None
    ) -> PageChain | PrimedPages | None:
        """What was started ahead for this stream and context, if anything: the list
        `room_on_wire` began reading, else the chain of its first page. One lock covers
        both, so that a list is never begun ahead while its turn has come."""
        if not hasattr(self, "_heads"):
            return None  # not in sync_all (a test reading one stream)
        key = _head_key(stream.name, context)
        with self._priming:
            primed = self._primed.pop(key, None)
            if primed is not None:
                return primed
            if not self._on_writer():
                # The field definitions, read on threads of their own: what was started
                # for them is theirs (its bookmark settled), but only the writer plans.
                ahead = self._heads.pop(key, None)
                return ahead[2] if ahead is not None else None
            if self._head_plan is None:
                # Planned at the first stream's first request, after the SDK wrote the
                # state it started from: planning settles the streams' starting bookmarks.
                self._plan_heads()
            ahead = self._heads.pop(key, None)
            # Read now, with the head or without: never to be started ahead again.
            self._head_plan[:] = [entry for entry in self._head_plan or () if entry[0] != key]
            if ahead is not None and stream.partitions:
                self._partition_taken[stream.name] = ahead[2]
            self._start_next_heads()
            return ahead[2] if ahead is not None else None

    def turn_begins(self, stream: PipedriveStream) -> None:
        """A top-level stream's turn has come (whether it then reads, or is skipped before
        its first request: refused custom fields, an earlier partition refused). What is
        left started ahead for the streams whose turn is over is stopped: the partitions
        a stream skipped, a stream skipped before asking for its first page. Left in
        place, they counted as heads ahead (or held the one list begun early) for the
        rest of the run, and no later stream's first page was requested before its turn."""
        if not hasattr(self, "_heads") or not self._on_writer():
            return
        with self._priming:
            self._turns_taken.add(stream.name)

            def over(name: str) -> bool:
                return name in self._turns_taken and name != stream.name

            for key, (other, _, head) in list(self._heads.items()):
                if over(other.name):
                    head.stop()
                    del self._heads[key]
            for key in [key for key in self._primed if over(key.split(" ", 1)[0])]:
                self._primed.pop(key).close()  # keyed by `_head_key`: the name first
            if self._head_plan:
                self._head_plan[:] = [e for e in self._head_plan if not over(e[1].name)]

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """Validate settings and stop with one line that names the wrong one."""
        if not self._config.get("api_key") and self._config.get("api_token"):
            self._config["api_key"] = self._config["api_token"]
        token = self._config.get("api_key")
        if isinstance(token, str) and token != token.strip():
            # A token file's newline or a pasted space: no token has whitespace around it.
            self._config["api_key"] = token.strip()
        timeout = self._config.get("request_timeout")
        if isinstance(timeout, decimal.Decimal):  # how the SDK reads a config file's 2.5
            self._config["request_timeout"] = float(timeout)
        problems = self._check_settings()
        if problems and raise_errors:
            raise ConfigError(problems[0])
        try:
            errors = super()._validate_config(raise_errors=raise_errors)
        except ConfigValidationError as exc:
            raise ConfigError(f"Invalid setting: {'; '.join(exc.errors)}") from None
        return problems + errors

    def _check_settings(self) -> list[str]:
        config = self._config
        problems = []
        token = config.get("api_key") or config.get("api_token") or ""
        if not isinstance(token, str):
            problems.append("Setting api_key must be a string: give your Pipedrive API token")
        elif not token:
            problems.append(
                "Setting api_key is missing or empty: give your Pipedrive API token "
                "(e.g. TAP_PIPEDRIVE_API_KEY=...)"
            )
        elif any(ch.isspace() for ch in token):
            problems.append("Setting api_key contains whitespace: check the API token")
        start = config.get("start_date")
        if not start or not str(start).strip():
            problems.append(
                "Setting start_date is missing: give an ISO 8601 date such as 2024-05-01T00:00:00Z"
            )
        else:
            try:
                parsed = parse_datetime(str(start))
            except ValueError:
                problems.append(
                    f"Setting start_date {start!r} is not an ISO 8601 date or date-time, "
                    "e.g. 2024-05-01T00:00:00Z"
                )
            else:
                if parsed > dt.datetime.now(UTC) + dt.timedelta(days=1):
                    problems.append(
                        f"Setting start_date {start!r} is in the future: nothing would be synced"
                    )
        cap = config.get("max_tokens_per_run")
        if cap is not None and (not isinstance(cap, int) or cap <= 0):
            problems.append("Setting max_tokens_per_run must be a positive number of tokens")
        concurrency = config.get("max_concurrent_requests")
        if concurrency is not None and (
            not isinstance(concurrency, int) or not 1 <= concurrency <= MAX_CONCURRENCY
        ):
            problems.append(
                f"Setting max_concurrent_requests must be a whole number from 1 to "
                f"{MAX_CONCURRENCY}"
            )
        timeout = config.get("request_timeout")
        if timeout is not None and (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not 1 <= timeout <= MAX_REQUEST_TIMEOUT
        ):
            problems.append(
                f"Setting request_timeout must be a number of seconds from 1 to "
                f"{MAX_REQUEST_TIMEOUT}"
            )
        try:
            api_roots(config)
        except ConfigError as exc:
            problems.append(f"Setting {exc}")
        return problems

    def _normalize_config(self) -> None:
        """One canonical start_date, so every comparison downstream sees the same form."""
        start = self._config.get("start_date")
        if start:
            # A bad one is reported by _validate_config when validation is on.
            with contextlib.suppress(ValueError):
                self._config["start_date"] = format_datetime(parse_datetime(str(start)))

    def setup_mapper(self) -> None:
        """`_sdc_deleted_at` automatic in the catalog the stream maps are built from, too:
        a catalog discovered before it was (Meltano keeps one cached) selecting a few
        columns sent deletions under a SCHEMA without it (see `PipedriveStream.metadata`)."""
        for entry in (self.input_catalog or {}).values():
            deletion_marker_made_automatic(entry.metadata)
            _free_form_without_properties(entry.schema)
        super().setup_mapper()

    def load_state(self, state: dict[str, t.Any]) -> None:
        """The state as `--state` gives it, or as Meltano's `state get` or a STATE message
        wraps it; a bookmark written without its `replication_key` gets the stream's (the
        SDK would otherwise ignore the value, start from `start_date` and then stop at the
        first record older than it, "unsorted data")."""
        state = copy.deepcopy(unwrap_state(state))
        keys = replication_keys()
        for name, bookmark in (state.get("bookmarks") or {}).items():
            if not isinstance(bookmark, dict):
                continue
            if bookmark.get("replication_key") and name in keys and keys[name] is None:
                # A stream now read whole (users, once bookmarked on `modified`): its
                # old bookmark would let it be skipped as unchanged before it ever sent
                # the rows the old filter left out.
                for key in ("replication_key", "replication_key_value", "synced_bookmark"):
                    bookmark.pop(key, None)
                bookmark.pop("synced_at", None)
            if (
                keys.get(name)
                and "replication_key_value" in bookmark
                and not bookmark.get("replication_key")  # missing, or null
            ):
                bookmark["replication_key"] = keys[name]
        super().load_state(state)

    def run_discovery(self) -> str:
        """The catalog, whatever `max_tokens_per_run`: the cap is a sync's (discovery
        reads only the field definitions, 7 requests), and a capped discovery would leave
        Meltano without a catalog."""
        cap, self.meter.cap = self.meter.cap, None
        try:
            return super().run_discovery()
        finally:
            self.meter.cap = cap

    def discover_streams(self) -> list[Stream]:
        return [stream_class(tap=self) for stream_class in STREAM_TYPES]

    def custom_field_layout(self, entity: str) -> CustomFieldLayout:
        """The account's custom fields of `entity`, read once per run from `*Fields`.

        Columns are chosen once per entity, avoiding the standard columns of every stream
        that carries the entity (deals and leads share the deal fields), so they agree.
        """
        if entity not in self._custom_field_layouts:
            definitions = self.field_definitions(entity)
            reserved = {
                name
                for stream_class in STREAM_TYPES
                if stream_class.custom_field_entity == entity
                for name in SCHEMAS.get_schema(stream_class.name)["properties"]
            }
            fields = build_custom_fields(
                definitions,
                name_mode=self.config.get("custom_field_names") or "key",
                reserved=reserved,
                pinned=self._catalog_columns(entity),
            )
            self.logger.info("%d custom %s fields", len(fields), entity)
            self._custom_field_layouts[entity] = CustomFieldLayout(
                fields, labels=bool(self.config.get("custom_field_labels", True))
            )
        return self._custom_field_layouts[entity]

    def _catalog_columns(self, entity: str) -> dict[str, str]:
        """Key -> column of `entity`'s custom fields in the run's catalog: a field renamed
        since discovery keeps its column (and its selection) until the next discovery."""
        pinned: dict[str, str] = {}
        for stream_class in STREAM_TYPES:
            if stream_class.custom_field_entity != entity or self.input_catalog is None:
                continue
            entry = self.input_catalog.get(stream_class.name)
            if entry is not None:
                properties = entry.schema.to_dict().get("properties") or {}
                pinned = {**described_columns(properties), **pinned}
        return pinned

    @property
    def _singer_catalog(self) -> Catalog:
        """The full catalog types every stream's custom fields: read the field definitions
        it needs side by side first, in one round trip instead of one after another."""
        self._read_field_definitions(
            {cls.custom_field_entity for cls in STREAM_TYPES} & FIELDS_STREAM_OF.keys()
        )
        return super()._singer_catalog

    def field_definitions(self, entity: str) -> list[dict[str, t.Any]]:
        """`/v1/{entity}Fields`, read once per run: for typing custom fields and for the
        `*_fields` streams alike."""
        self._read_field_definitions({entity})
        return [dict(row) for row in self._field_definitions[entity]]

    def definitions_failure(self, entity: str) -> ApiError | None:
        """Why `entity`'s field definitions could not be read; None if they were."""
        self._read_field_definitions({entity})
        return self._definitions_failed.get(entity)

    def _read_field_definitions(self, entities: set[str | None]) -> None:
        unread = sorted(e for e in entities if e and e not in self._field_definitions)
        streams = [self.streams[FIELDS_STREAM_OF[entity].name] for entity in unread]
        rows: list[list[dict[str, t.Any]]] = []
        # Side by side, at most `max_concurrent_requests` at a time.
        pairs = list(zip(unread, streams, strict=True))
        for at in range(0, len(pairs), self.concurrency):
            batch = [
                in_background("fields", self._request_field_definitions, *pair)
                for pair in pairs[at : at + self.concurrency]
            ]
            rows += [reading.result() for reading in batch]
        self._field_definitions.update(zip(unread, rows, strict=True))

    def _request_field_definitions(
        self, entity: str, fields_stream: Stream
    ) -> list[dict[str, t.Any]]:
        try:
            return list(fields_stream.request_records(None))  # type: ignore[attr-defined]
        except UnavailableError as exc:
            # A plan without the feature (403) or an API without the endpoint (404): the
            # streams that carry these custom fields are skipped, bookmarks kept, rather
            # than sent with raw hash keys; the other streams go on. Any other error (a
            # `success: false`, retries spent) stops the run, as a list's would.
            self._definitions_failed[entity] = exc
            return []


#: A day: past it a deadline overflows the clock (`inf`, `1e400`), and no answer is awaited.
MAX_REQUEST_TIMEOUT = 86400

#: What `TAP_PIPEDRIVE_*` may say for a boolean setting (the SDK's true words, and false).
BOOLEAN_WORDS = frozenset(("true", "1", "yes", "on", "false", "0", "no", "off"))


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _free_form_without_properties(schema: t.Any) -> None:
    """A catalog discovered before free-form objects (deal flow's `data`) lost their empty
    `properties`: drop them here too, or flattening drops the object from the SCHEMA while
    it flattens its values into columns the SCHEMA lacks. Objects in arrays keep theirs."""
    for prop in (getattr(schema, "properties", None) or {}).values():
        types = prop.type if isinstance(prop.type, list) else [prop.type]
        if "object" in types and prop.properties == {}:
            prop.properties = None
        else:
            _free_form_without_properties(prop)


def in_background(name: str, function: t.Callable[..., T], *args: t.Any) -> Future[T]:
    """`function(*args)` in a daemon thread: a run stopped (by a signal, or a fatal answer
    elsewhere) does not wait at exit for its request to time out, as it would for a
    `ThreadPoolExecutor`'s worker."""
    future: Future[T] = Future()

    def run() -> None:
        future.set_running_or_notify_cancel()
        try:
            future.set_result(function(*args))
        except BaseException as exc:  # handed to whoever waits for the result
            future.set_exception(exc)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


def _head_key(stream_name: str, context: Context | None) -> str:
    return f"{stream_name} {json.dumps(context, sort_keys=True, default=str)}"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _exit_with(line: str, code: int = 1) -> t.NoReturn:
    """End the run with `line` as the last line on stderr: requests still on their way in
    other threads log nothing more, and the line is written whole, not cut by theirs.
    A record they were already writing when logging went off is let finish first: each
    handler's lock is held while the line is written."""
    logging.disable(logging.CRITICAL)
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    handlers = {h for logger in loggers for h in getattr(logger, "handlers", ())}
    with contextlib.ExitStack() as held:
        for handler in handlers:
            handler.acquire()
            held.callback(handler.release)
        sys.stderr.write(f"{line}\n")
        sys.stderr.flush()
    sys.exit(code)


def main() -> None:
    """Console entry point: the SDK's CLI, with user-actionable errors as one line."""
    tune_malloc()  # before discovery's first pages, not only before the sync's
    try:
        try:
            check_cli_files(sys.argv[1:])
            TapPipedrive.cli()
        except RunHalted as exc:  # requests side by side (e.g. at discovery) stopped
            if exc.cause is None:
                raise
            raise exc.cause from None  # reported as the failure that halted them
        except SystemExit as exc:
            if not exc.code:
                # Done, output whole: a signal while the interpreter shuts down would
                # otherwise end a finished run as killed by it (-2, -15).
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
            raise
    except (TokenCapReached, Stopped) as exc:
        _exit_with(f"tap-pipedrive: {_one_line(exc)}", exc.exit_code)
    except PipedriveError as exc:
        _exit_with(f"tap-pipedrive: error: {_one_line(exc)}", exc.exit_code)
    except requests.exceptions.ConnectionError as exc:
        host = getattr(getattr(exc, "request", None), "url", None)
        host = requests.utils.urlparse(host).netloc if host else "Pipedrive"
        failed = ConnectionFailed(f"cannot reach {host} (after retries)")
        _exit_with(f"tap-pipedrive: error: {failed}")
    except requests.exceptions.Timeout:
        _exit_with(
            "tap-pipedrive: error: Pipedrive did not answer within request_timeout (after retries)"
        )
    except RetriableAPIError as exc:
        _exit_with(
            f"tap-pipedrive: error: still failing after {PipedriveStream.max_tries} tries: "
            f"{_one_line(exc)}; the last STATE emitted lets the next run resume"
        )
    except requests.exceptions.RequestException as exc:
        _exit_with(
            f"tap-pipedrive: error: network error talking to Pipedrive "
            f"({type(exc).__name__}, after retries)"
        )
    except MappingError as exc:  # a stream_maps expression: the user's setting
        cause = f" ({_one_line(exc.__cause__)})" if exc.__cause__ else ""
        _exit_with(f"tap-pipedrive: error: stream_maps: {_one_line(exc)}{cause}", 2)
    except BrokenPipeError:
        target_stopped_reading()
