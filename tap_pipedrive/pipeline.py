"""Requests kept in flight ahead of the reader, so that a slow API is read at its rate limit
rather than one round trip at a time, while records still leave in order.

A *chain* is a run of pages that must be requested one after another (each needs the
previous page's cursor or offset). Its own thread fetches it a page or two ahead of the
reader, so the next request is on its way while this page's records are written. Streams
keep several chains going at once where the API lets them split the work into independent
chains (time windows of a v2 list, offset pages of a v1 list, batches of deal ids) and
read them back in order. Memory stays bounded: each chain holds at most `depth` pages the
reader has not taken yet, fetched or on their way.

With `concurrency` 1 nothing runs ahead: a chain then fetches in the reader's own thread,
one request at a time, exactly as a plain sequential client would.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import math
import queue
import threading
import typing as t
from dataclasses import dataclass, field

from tap_pipedrive.timeutil import parse_datetime

if t.TYPE_CHECKING:
    import requests
    from singer_sdk.pagination import BaseAPIPaginator

_PAGE, _ERROR, _END = "page", "error", "end"
_POLL_SECONDS = 0.2
_M_ARENA_MAX = -8  # glibc's mallopt parameters
_M_MMAP_THRESHOLD = -3
#: Parts of a list answered and waiting for the writer before no more are started: enough
#: that answers coming back together do not idle the wire while the writer catches up
#: (at 250 ms and 40 per 2 s, a 100k backfill took 30.1 s with 8 against 31.1 s with 2),
#: few enough that a slow writer holds a few MB, not the list. For a v2 list's windows
#: (`windows_to_start`) it bounds the pages answered and those on their way together.
PAGES_WAITING = 8
#: Parts kept on the wire beyond what the round trip needs: an answer is parsed and the
#: next part chosen before another is sent, and the pacer must not go idle meanwhile.
SPARE_ON_WIRE = 2
#: Splitting a window that holds far more than it was sized for (see `split_overflow`):
#: the most records its cursor is left to read after the first page (three pages, one
#: round trip each), and the records each window split off is sized for (two pages, the
#: second mostly full).
CURSOR_UP_TO = 1500
SPLIT_TARGET = 900
#: The most windows one window is split into. The page measured may be a burst of edits
#: the rest of the window does not share: split by its density, a month after a busy hour
#: would become thousands of empty windows. A part as dense as the page splits again.
MOST_PARTS = 8


def tune_malloc(arenas: int = 2, mmap_threshold: int = 256 * 1024) -> None:
    """Keep glibc's malloc from stranding memory the run has freed; a no-op where the C
    library has no `mallopt`. Called before the page threads start.

    - Arenas capped at `arenas`: by default each thread that allocates gets one, and pages
      parsed in a fetching thread and freed by the writer leave memory stranded in many
      half-empty arenas, so peak RSS grows with the number of chains rather than with
      what is held (at 100,000 records: 87 to 97 MB uncapped, 70 MB with 2 arenas).
    - Blocks of `mmap_threshold` and more (a page's body, its text) mapped on their own
      and returned to the system when freed. By default glibc raises that threshold each
      time such a block is freed, after which they come from the heap, whose freed space
      long-lived objects pin: RSS then crept up stream after stream (100,000 records, no
      latency: 72 to 77 MB against 68 to 69 MB with a fixed threshold)."""
    with contextlib.suppress(OSError, AttributeError, TypeError):
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_ARENA_MAX, arenas)
        libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold)


class ReadAhead:
    """How many parts of a list to start beside those the writer has not taken yet.

    Parts on the wire (sent, not answered) are what hides the round trip: `wanted` of
    them keep the burst limit, not the distance, setting the pace. Parts answered but not
    yet written only wait in memory: once `PAGES_WAITING` of them wait, the writer sets
    the pace and no part is started until it takes one. Counting the two apart keeps the
    wire full while the writer keeps up, without ever holding the list; counting them
    together (as the first version did) left the wire half empty whenever a few answers
    came back together.

    At the start of a list, as many parts may wait as the wire carries, then one more
    per part the writer takes: a fast server next door (one part on the wire) does not
    fill `PAGES_WAITING` with pages past the end of a short list, while a distant one
    gets its whole round trip's worth at once. (Letting parts out only as the writer took
    them cost a 100k backfill at 250 ms 2 s of its 28: every stream ramped up anew.)
    """

    RAMP = 2

    def __init__(self) -> None:
        self.taken = 0

    def pages(self, chain: PageChain) -> t.Iterator[requests.Response]:
        """The pages of the part the writer turns to."""
        self.taken += 1
        return chain.pages()

    def to_start(self, unread: t.Collection[PageChain], wanted: int) -> int:
        """How many parts to start beside the `unread` ones, for `wanted` on the wire."""
        answered = sum(1 for chain in unread if chain.has_page())
        on_wire = len(unread) - answered
        may_wait = min(PAGES_WAITING, max(self.RAMP + self.taken, wanted))
        return max(min(wanted - on_wire, may_wait - answered), 0)


def windows_to_start(windows: t.Collection[PageChain], wanted: int) -> int:
    """How many more time windows of a list to start beside those begun and not yet
    written: enough that `wanted` requests are on the wire, while the pages answered and
    those on their way stay within `PAGES_WAITING`.

    Counted by pages and by requests, not by windows (as `ReadAhead` counts a list's
    parts): a window that has answered may still be fetching its next page, and a window
    that has not may hold nothing yet. So no window starts while the wire is full, and
    each starts as late as the wire allows, sized from the freshest density: at 250 ms
    and 40 per 2 s the v2 core streams took 148 requests against 156 (in 8.8 to 8.9 s
    against 8.8 to 9.0 s), peaking at 90 MB against 107 MB."""
    fetching = sum(1 for chain in windows if chain.fetching())
    waiting = sum(chain.pages_waiting() for chain in windows)
    return max(min(wanted - fetching, PAGES_WAITING - waiting - fetching), 0)


class PageChain:
    """The pages of one paginator, fetched by a thread of its own ahead of the reader: at
    most `depth` pages the reader has not taken, counting the one on its way, so that a
    chain never holds more than `depth` pages besides the one being written.

    `fetch(token)` sends one request (retries included) and returns its response; the
    paginator computes each next token from the response. With `hold=True` the thread stops
    after the first page until the reader asks for a second one (or calls `release`): a
    stream's first page can then be requested long before the stream is read, holding
    nothing more than that page. `max_pages` ends the chain early. `on_page(number,
    response)` is told of each page (numbered from 1) in the fetching thread, before the
    next is requested, and may end the chain there (`end_here`). `compact(response)` is
    applied to each page fetched before the reader asks for the first, before it is
    queued: such a page may wait for most of the run, and should wait in its smallest form.
    """

    def __init__(
        self,
        fetch: t.Callable[[t.Any], requests.Response],
        paginator: BaseAPIPaginator[t.Any],
        *,
        depth: int = 1,
        hold: bool = False,
        max_pages: int | None = None,
        inline: bool = False,
        name: str = "page-chain",
        on_page: t.Callable[[int, requests.Response], None] | None = None,
        compact: t.Callable[[requests.Response], None] | None = None,
    ) -> None:
        self.fetch = fetch
        self.on_page = on_page
        self.compact = compact
        #: Set as the reader asks for the first page: pages fetched before wait, maybe for
        #: most of the run (a stream's first page, fetched long before its turn).
        self._reading = False
        self._ended = False
        self.paginator = paginator
        self.max_pages = max_pages
        self.inline = inline
        self.name = name
        self._queue: queue.Queue[tuple[str, t.Any]] = queue.Queue()
        # One slot per page fetched ahead: taken before a request, given back when the
        # reader takes that page.
        self._slots = threading.Semaphore(max(depth, 1))
        self._stopped = threading.Event()
        self._released = threading.Event()
        if not hold:
            self._released.set()
        self._thread: threading.Thread | None = None
        #: What came first: a page, an error or the end (None until then); kept once the
        #: reader has taken it.
        self._first_kind: str | None = None

    def start(self) -> PageChain:
        """Start fetching now (a no-op when inline or already started)."""
        if not self.inline and self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
        return self

    def pages_waiting(self) -> int:
        """Pages fetched that the reader has not taken."""
        with self._queue.mutex:
            return sum(1 for kind, _ in self._queue.queue if kind == _PAGE)

    def fetching(self) -> bool:
        """Whether the chain may still send a request: it has not reached its last page,
        been ended or been stopped."""
        return not (self.paginator.finished or self._ended or self._stopped.is_set())

    def has_page(self) -> bool:
        """Whether a page (or the chain's end) is fetched and waits for the reader."""
        return not self._queue.empty()

    def first_answer(self) -> str | None:
        """ "page", "error" (a 404 for an endpoint the account lacks) or "end": what the
        chain's first request came to, even once the reader has taken it; None while it is
        on its way."""
        return self._first_kind

    def release(self) -> None:
        """Let a held chain fetch on past its first page."""
        self._released.set()

    def stop(self) -> None:
        """Fetch no further page; what is in flight is dropped."""
        self._stopped.set()
        self._released.set()

    def pages(self) -> t.Iterator[requests.Response]:
        """The responses in order; an error of the fetching thread is raised here."""
        self._reading = True
        if self.inline:
            yield from self._inline_pages()
            return
        self.start()
        served = 0
        try:
            while True:
                if served == 1:
                    self.release()
                kind, value = self._queue.get()
                if kind == _END:
                    return
                if kind == _ERROR:
                    raise value
                self._slots.release()
                served += 1
                yield value
        finally:
            self.stop()

    def _inline_pages(self) -> t.Iterator[requests.Response]:
        served = 0
        while not self.paginator.finished and not self._stopped.is_set():
            if self.max_pages is not None and served >= self.max_pages:
                return
            response = self._fetch_next()
            served += 1
            self._page_here(served, response)
            yield response
            if self._ended:
                return

    def _run(self) -> None:
        try:
            fetched = 0
            while not self.paginator.finished and not self._stopped.is_set():
                if self._ended or (self.max_pages is not None and fetched >= self.max_pages):
                    break
                if fetched == 1:
                    self._released.wait()
                    if self._stopped.is_set():
                        break
                if not self._take_slot():
                    return
                response = self._fetch_next()
                fetched += 1
                if self.compact is not None and not self._reading:
                    # Before it is queued: once the reader holds it, it may change it.
                    self.compact(response)
                self._put(_PAGE, response)
                self._page_here(fetched, response)
        except BaseException as exc:  # handed to the reader, raised there
            self._put(_ERROR, exc)
        self._put(_END, None)

    def _put(self, kind: str, value: t.Any) -> None:
        if self._first_kind is None:
            self._first_kind = kind
        self._queue.put((kind, value))

    def end_here(self) -> None:
        """Fetch nothing after this page. Called from `on_page`, which runs in the
        fetching thread before it asks for the next page, so none is sent."""
        self._ended = True

    def _page_here(self, number: int, response: requests.Response) -> None:
        """Tell `on_page`, once the page is in the queue: `has_page()` is then true for
        whoever the callback asks about this chain."""
        if self.on_page is not None:
            self.on_page(number, response)

    def _fetch_next(self) -> requests.Response:
        """Request the paginator's next page and move the paginator past it."""
        response = self.fetch(self.paginator.current_value)
        self.paginator.advance(response)
        return response

    def _take_slot(self) -> bool:
        """Wait until the reader has room for one more page; False once stopped."""
        while not self._stopped.is_set():
            if self._slots.acquire(timeout=_POLL_SECONDS):
                return True
        return False


def ids_of_second(
    ids: t.Sequence[t.Any], times: t.Sequence[dt.datetime], last: dt.datetime
) -> dict[t.Any, dt.datetime]:
    """Id -> update time of the records (sorted by `times`) in the same second as `last`: a
    window that begins at `last` is asked from its whole second (the API's filters take
    seconds), so those come again, and are already read, whatever their milliseconds."""
    second = last.replace(microsecond=0)
    return {i: time for i, time in zip(ids, times, strict=True) if time >= second}


@dataclass(frozen=True)
class Window:
    """Records updated in `[since, until)` (`until` None: open-ended), minus `skip_ids`,
    the records of the `since` second already read. Bounds are whole seconds, as the
    API's filters take them: a bound with milliseconds, rounded down in the query, left
    the records between it and its second to neither window."""

    since: dt.datetime
    until: dt.datetime | None
    #: Id -> update time of the `since` second's records read on the page before.
    skip_ids: t.Mapping[t.Any, dt.datetime] = field(default_factory=dict)

    def read_before(self, row: dict[str, t.Any], key: str) -> bool:
        """Whether `row` was read with the page before the window: its id is one of the
        `since` second's read there, with the same update time. A record edited since (a
        later time, milliseconds later or in a later second) is its new version, to be
        read again."""
        read_at = self.skip_ids.get(row.get("id"))
        if read_at is None:
            return False
        try:
            return parse_datetime(row[key]) == read_at
        except (KeyError, TypeError, ValueError):
            return True


class TimeWindows:
    """Splits the update times from `start` on into windows of about `target` records.

    The number of records in a window is guessed from the density (records per second)
    seen in the latest window to answer, so that most windows fit one page: a wrong guess
    costs a second page (too dense) or a part-filled one (too sparse), never a record.
    Windows end at `until`, the run's start, or after the first empty one; the last window
    is open-ended.
    """

    def __init__(
        self,
        start: dt.datetime,
        until: dt.datetime,
        density: float,
        *,
        target: int,
        skip_ids: t.Mapping[t.Any, dt.datetime] | None = None,
    ) -> None:
        self.next_since: dt.datetime | None = start
        self.until = until
        self.density = max(density, 1e-9)
        self.target = target
        self._skip_ids = dict(skip_ids or {})
        self._latest: dt.datetime | None = None
        self.answered = 0

    @classmethod
    def after_page(
        cls, times: list[dt.datetime], ids: list[t.Any], until: dt.datetime, *, target: int
    ) -> TimeWindows:
        """The windows after a first page of records with these (sorted) update times."""
        last = times[-1]
        span = max((last - times[0]).total_seconds(), 1.0)
        skip = ids_of_second(ids, times, last)
        second = last.replace(microsecond=0)
        return cls(second, until, len(times) / span, target=target, skip_ids=skip)

    def next(self) -> Window | None:
        since = self.next_since
        if since is None:
            return None
        seconds = max(math.ceil(self.target / self.density), 1)
        end = since + dt.timedelta(seconds=seconds)
        if end >= self.until:
            end, self.next_since = None, None
        else:
            self.next_since = end
        window = Window(since, end, self._skip_ids)
        self._skip_ids = {}
        return window

    def end_before(self, newest: dt.datetime | None) -> None:
        """The list's newest update time is known: no window need start after it."""
        if newest is not None:
            self.until = min(self.until, newest + dt.timedelta(seconds=1))

    def observe_page(self, window: Window, payload: dict[str, t.Any], key: str) -> None:
        """Learn the density from the first page of a window, as soon as it arrives (from
        the thread that fetched it): the latest window to answer says the most about the
        next ones. An empty window ends the splitting: the next window is open-ended."""
        self.answered += 1
        if window.until is None or (self._latest and window.since < self._latest):
            return
        self._latest = window.since
        records = payload.get("data") or []
        more = bool((payload.get("additional_data") or {}).get("next_cursor"))
        if not records:
            self.until = min(self.until, window.until)
            return
        seconds = (window.until - window.since).total_seconds()
        if more:
            try:
                last = parse_datetime(records[-1][key])
            except (KeyError, TypeError, ValueError):
                return
            seconds = max((last - window.since).total_seconds(), 1.0)
        self.density = max(len(records) / seconds, 1e-9)


def split_overflow(
    window: Window, payload: dict[str, t.Any], key: str, *, end: dt.datetime | None = None
) -> list[Window] | None:
    """The rest of an overflowing `window`, after this page of it (`payload`), as windows
    sized from the page, the best measure there is of that stretch: the first for about
    `SPLIT_TARGET` records, each next one twice as long; None when the rest is short
    enough for the window's cursor (`CURSOR_UP_TO`).

    Windows are sized from the density seen so far; one that meets a burst of edits (a
    bulk update, an import) would otherwise be read one page after another, a round trip
    each, while the windows after it wait. Split, the burst is read side by side, for a
    few more requests: the parts end in part-filled pages (10,000 deals edited in one mass
    update, at 250 ms a response: 6.0 to 6.2 s and 41 requests against 8.4 to 9.2 s and
    34). Checked on every page of a window: the burst may begin after its first. The
    density is that of the page's last quarter, next to the rest, without its last second,
    which may be a bulk edit of hundreds of records the rest does not share.

    The last window is open-ended (it takes what is updated while the run reads); its
    rest is split up to `end`, where the list ended when the run began, and its last
    part stays open-ended."""
    records = payload.get("data") or []
    until = window.until or end
    if until is None or not records:
        return None
    if not (payload.get("additional_data") or {}).get("next_cursor"):
        return None
    # The density of the page's last quarter: the stretch next to the rest, and the one
    # that shows a burst of edits begun within the page.
    quarter = records[len(records) * 3 // 4 :]
    try:
        first = parse_datetime(records[0][key])
        times = [parse_datetime(row[key]) for row in quarter]
    except (KeyError, TypeError, ValueError):
        return None
    tail, last = times[0], times[-1]
    if first < window.since or (window.until is not None and last >= window.until):
        return None  # the API did not apply the window's bounds: nothing here to size from
    if last >= until:
        return None  # the rest lies past the list's end as the run began
    inner = sum(1 for time in times if tail < time < last)
    seconds = (last - tail).total_seconds()
    if inner == 0 or seconds < 2:
        return None  # one or two seconds of records: only the cursor can page through them
    rest_seconds = (until - last).total_seconds()
    rest = inner / seconds * rest_seconds
    if rest <= CURSOR_UP_TO:
        return None
    # The first part holds about `SPLIT_TARGET` records at the page's density, each next
    # one twice the time of the one before: a burst that goes on overflows them and is
    # split again, from their own full first pages; one that ends leaves a few windows
    # past it, not many. The last part takes what is left.
    step = max(SPLIT_TARGET / (inner / seconds), 1.0)
    skip = ids_of_second([row.get("id") for row in quarter], times, last)
    windows = []
    since = last = last.replace(microsecond=0)
    while since < until:
        part_until = since + dt.timedelta(seconds=math.ceil(step))
        if part_until >= until or len(windows) == MOST_PARTS - 1:
            part_until = until
        windows.append(Window(since, part_until, skip if since == last else {}))
        since, step = part_until, step * 2
    if window.until is None:
        windows[-1] = Window(windows[-1].since, None, windows[-1].skip_ids)
    return windows
