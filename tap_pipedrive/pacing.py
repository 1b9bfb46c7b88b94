"""Even pacing under Pipedrive's burst limit.

Pipedrive allows each token a number of requests (`x-ratelimit-limit`: 20 to 120 by plan) in
a rolling 2-second window. A client that sends as fast as it can spends the window in a
burst and then must wait for it to reset: at 40 a window, 40 requests and a 2 s stall. Spacing
requests `2 s / limit` apart instead keeps the same ceiling without the stalls and without
ever collecting a 429. The limit is learnt from the responses' headers.

The token's burst limit may be shared: every integration of the company using the same
token draws on the same window. The tap then takes a share of it, found as TCP finds its
share of a link: its requests per window are halved after a 429 (cut by a quarter when an
answer shows the window spent by others), at most once in two windows, and grow back by
two requests per window while answers come without either. Alone on the token, it keeps the
whole limit less the margin and never cuts.

Spacing alone is a schedule, not a guarantee: a thread that wakes late from its wait sends
its request closer to the next one. So the times requests actually leave are kept too, and
no request leaves while the last window already holds `limit - HEADROOM` of them; the margin
is then only for the network's jitter, not for the scheduler's. Should the server still see
its window spent, the margin grows by one, up to a tenth of the limit, and the requests
wait: for the window's reset if another client of the same token spends it too, for two
slots if the tap's own requests, bunched on the way, fill it (see `window_spent`).
"""

from __future__ import annotations

import math
import threading
import time
import typing as t
from collections import deque

BURST_WINDOW_SECONDS = 2.0
#: Requests per window left unused, as a margin for arrivals that the network bunches.
HEADROOM = 2
#: A share cut once is not cut again this soon: the 429s of requests sent before the
#: cut (on their way, and their retries) tell of the same crowding.
CUT_AT_MOST_EVERY = 2 * BURST_WINDOW_SECONDS
#: Requests a window the share grows by, after a cut, for each window without another.
REGROWTH = 2.0
#: Send times kept: more than any plan's burst limit (120).
SENT_KEPT = 256


class Pacer:
    """Spaces requests, across every stream of the run, evenly over the burst window."""

    #: Requests per second assumed until a response tells the limit: Pipedrive's lowest
    #: burst limit, 20 per 2 s.
    DEFAULT_RATE = 10.0

    def __init__(self) -> None:
        self.interval = 0.0
        self._next_slot = 0.0
        self._lock = threading.Lock()
        #: When the latest requests left, from the run's first: those sent before an
        #: answer told the limit count in its window too.
        self._sent: deque[float] = deque(maxlen=SENT_KEPT)
        #: Requests a window may hold, once the limit is known.
        self.allowed = 0
        #: The shortest round trip of the run so far.
        self.round_trip = 0.0
        self.limit = 0
        self.headroom = HEADROOM
        #: Requests per window the tap takes for itself (None until the limit is known):
        #: below `limit - headroom` only while others spend the same token's window.
        self.share: float | None = None
        self._last_cut = -math.inf
        self._cut_to = 0.0

    def observe_round_trip(self, seconds: float) -> None:
        """Learn how long a request takes, to the answer's headers.

        The shortest of the run is kept, not an average: a server that shares its time
        among the requests in flight answers each later the more there are, and an
        average would then ask for ever more in flight while they only queue longer. The
        shortest is what the distance costs; a busy server next door, whose small answers
        come back in milliseconds, gets no more than a page ahead.
        """
        self.round_trip = min(seconds, self.round_trip) if self.round_trip else seconds

    def requests_to_keep_in_flight(self, most: int) -> int:
        """How many requests in flight reach the burst limit, at most `most`: a round trip
        of 0.3 s at 20 requests/s needs 6; a fast server needs 1, and then fetching far
        ahead would only waste requests past the end of a list."""
        rate = 1.0 / self.interval if self.interval else self.DEFAULT_RATE
        return max(1, min(most, math.ceil(self.round_trip * rate)))

    def wait_for_slot(self) -> None:
        """Wait for this request's turn: its place in the even schedule, then room in the
        last burst window for it."""
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self.interval
        if slot > now:
            time.sleep(slot - now)
        while True:
            with self._lock:
                now = time.monotonic()
                allowed = self.allowed
                # The window is full while the `allowed`-th latest request is in it.
                full = allowed and len(self._sent) >= allowed
                room_at = self._sent[-allowed] + BURST_WINDOW_SECONDS if full else now
                if room_at <= now:
                    self._sent.append(now)
                    return
            time.sleep(room_at - now)

    def learn(self, headers: t.Mapping[str, str]) -> None:
        """Take the burst limit from `x-ratelimit-limit`, if the response has it."""
        try:
            limit = int(float(headers.get("x-ratelimit-limit", "")))
        except ValueError:
            return
        if limit > 0:
            with self._lock:
                self.limit = limit
                self._apply_limit()

    def window_spent(self, reset: float) -> float:
        """An answer says the window is spent (`x-ratelimit-remaining: 0`, not a 429): how
        long every thread holds, which it then does.

        If the tap itself sent about as many requests as it allows a window in the window
        the server counted (the last 2 s and the latest round trip), its own requests,
        arriving bunched, fill it: the rolling window has room again as soon as the oldest
        of them ages out, a slot or two later, and holding for the whole reset (2 s) idled
        the wire for nothing (a 100k backfill at 250 ms: 2 s of its 26). Fewer of its own:
        another client of the token spends it too, and the reset is awaited."""
        with self._lock:
            now = time.monotonic()
            counted_since = now - BURST_WINDOW_SECONDS - self.round_trip
            own = sum(1 for sent in self._sent if sent > counted_since)
            ours = self.allowed and own >= self.allowed
        wait = min(reset, 2 * self.interval) if ours else reset
        self.hold(wait)
        if not ours:
            self.congested(0.75)
        return wait

    def congested(self, factor: float) -> None:
        """Others spend the token's window too (a 429; or a window spent with few of the
        tap's own requests in it): take `factor` of the current share, at most once in
        `CUT_AT_MOST_EVERY` (the answers of requests already on their way tell of the same
        crowding)."""
        with self._lock:
            now = time.monotonic()
            if self.share is None or now - self._last_cut < CUT_AT_MOST_EVERY:
                return
            self._last_cut = now
            self.share = self._cut_to = max(1.0, self.share * factor)
            self._apply_limit()

    def answered(self) -> None:
        """An answer without a spent window: the share grows back with the time since it
        was cut, `REGROWTH` requests a window, up to the whole limit less the margin. By
        time, not by answers: a share cut small gets few answers, and grew back for a
        minute one request at a time (the lists read at 3 requests a second)."""
        if self.share is None or self.share >= self.limit - self.headroom:
            return
        with self._lock:
            if self.share is not None:
                windows = (time.monotonic() - self._last_cut) / BURST_WINDOW_SECONDS
                self.share = min(self._cut_to + REGROWTH * windows, float(self.limit))
                self._apply_limit()

    def hold(self, seconds: float) -> None:
        """The server says the window is spent (`x-ratelimit-remaining: 0`, or a 429): no
        thread sends for `seconds`, the window's reset; and a wider margin from now on."""
        with self._lock:
            self._next_slot = max(self._next_slot, time.monotonic() + seconds)
            if self.limit:
                self.headroom = min(self.headroom + 1, max(HEADROOM, self.limit // 10))
                self._apply_limit()

    def _apply_limit(self) -> None:
        whole = max(self.limit - self.headroom, 1)
        if self.share is None:
            self.share = float(whole)
        self.allowed = min(max(min(int(self.share), whole), 1), SENT_KEPT)
        self.interval = BURST_WINDOW_SECONDS / self.allowed
