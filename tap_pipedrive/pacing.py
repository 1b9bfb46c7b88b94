"""Even pacing under Pipedrive's burst limit.

Pipedrive allows each token a number of requests (`x-ratelimit-limit`: 20 to 120 by plan) in
a rolling 2-second window. A client that sends as fast as it can spends the window in a
burst and then must wait for it to reset: at 40 a window, 40 requests and a 2 s stall. Spacing
requests `2 s / limit` apart instead keeps the same ceiling without the stalls and without
ever collecting a 429. The limit is learnt from the responses' headers.
"""

from __future__ import annotations

import math
import threading
import time
import typing as t

BURST_WINDOW_SECONDS = 2.0
#: Requests per window left unused, as a margin, at least.
HEADROOM = 2


class Pacer:
    """Spaces requests, across every stream of the run, evenly over the burst window."""

    #: Requests per second assumed until a response tells the limit: Pipedrive's lowest
    #: burst limit, 20 per 2 s.
    DEFAULT_RATE = 10.0

    def __init__(self) -> None:
        self.interval = 0.0
        self._next_slot = 0.0
        self._lock = threading.Lock()
        #: The shortest round trip of the run so far.
        self.round_trip = 0.0

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
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self.interval
        if slot > now:
            time.sleep(slot - now)

    def learn(self, headers: t.Mapping[str, str]) -> None:
        """Take the burst limit from `x-ratelimit-limit`, if the response has it."""
        try:
            limit = int(float(headers.get("x-ratelimit-limit", "")))
        except ValueError:
            return
        if limit > 0:
            # A tenth below the limit (at least 2): the server counts arrivals, which
            # bunch up when threads wake late from their waits.
            self.interval = BURST_WINDOW_SECONDS / max(limit - max(HEADROOM, limit // 10), 1)
