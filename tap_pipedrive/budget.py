"""API token accounting: what each request costs, per stream and per run, and the cap.

Pipedrive charges every request tokens from one daily budget per company (30,000 x plan
multiplier x seats), shared by every integration. The costs come from the specs'
`x-token-cost` (`schemas/_token_costs.json`): a v1 list 20, a v2 list 10, ...
"""

from __future__ import annotations

import json
import re
import threading
import typing as t
from dataclasses import dataclass, field
from importlib import resources

from tap_pipedrive.errors import PipedriveError

DEFAULT_COST = {"v1": 20, "v2": 10}


def load_token_costs() -> dict[str, dict[str, int]]:
    text = resources.files("tap_pipedrive.schemas").joinpath("_token_costs.json").read_text()
    return json.loads(text)


TOKEN_COSTS = load_token_costs()


def token_cost(api_version: str, path: str) -> int:
    """The spec's cost of a request to `path`; the spec names every path parameter
    `{id}` where the streams name theirs (`{deal_id}`, `{thread_id}`)."""
    spec_path = re.sub(r"\{[^}]+\}", "{id}", path)
    return TOKEN_COSTS.get(api_version, {}).get(spec_path, DEFAULT_COST[api_version])


class TokenCapReached(PipedriveError):
    """The run would cross `max_tokens_per_run`: stop cleanly with a resumable state.

    Its line counts the records when it is shown: the pages already read when the cap
    was met are still written, so a count taken then fell short of the run's total."""

    exit_code = 0

    def __init__(self, meter: TokenMeter, stream: str) -> None:
        super().__init__(stream)
        self.meter, self.stream = meter, stream

    def __str__(self) -> str:
        meter = self.meter
        return (
            f"Stopped before crossing max_tokens_per_run={meter.cap}: {meter.tokens} tokens "
            f"spent in {meter.requests} requests, {meter.records} records sent; stopped in "
            f"stream '{self.stream}'. The state emitted last lets the next run resume from here"
        )


@dataclass
class StreamUsage:
    requests: int = 0
    tokens: int = 0
    records: int = 0


@dataclass
class TokenMeter:
    """Counts requests, tokens and records; refuses a request that would cross the cap."""

    cap: int | None = None
    usage: dict[str, StreamUsage] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def tokens(self) -> int:
        return sum(u.tokens for u in self.usage.values())

    @property
    def requests(self) -> int:
        return sum(u.requests for u in self.usage.values())

    @property
    def records(self) -> int:
        return sum(u.records for u in self.usage.values())

    def charge(self, stream: str, cost: int) -> None:
        """Account for one request about to be sent; raise if it would cross the cap."""
        with self._lock:
            if self.cap is not None and self.tokens + cost > self.cap:
                raise TokenCapReached(self, stream)
            usage = self.usage.setdefault(stream, StreamUsage())
            usage.requests += 1
            usage.tokens += cost

    def refund(self, stream: str, cost: int, *, request: bool) -> None:
        """Take back a charge: the request never reached the server (`request=True`: not
        a request at all), or Pipedrive rejected its token (no company's budget pays)."""
        with self._lock:
            usage = self.usage.setdefault(stream, StreamUsage())
            usage.tokens -= cost
            if request:
                usage.requests -= 1

    def count_record(self, stream: str) -> None:
        usage = self.usage.get(stream)
        if usage is None:
            usage = self.usage.setdefault(stream, StreamUsage())
        usage.records += 1

    def uncount_record(self, stream: str) -> None:
        """A record counted by `count_record` that will not be written after all."""
        usage = self.usage.get(stream)
        if usage is not None and usage.records:
            usage.records -= 1

    def summary_lines(self) -> t.Iterator[str]:
        for stream, usage in sorted(self.usage.items()):
            yield (
                f"{stream}: {_count(usage.records, 'record')}, "
                f"{_count(usage.requests, 'request')}, {_count(usage.tokens, 'token')}"
            )
        yield (
            f"run total: {_count(self.records, 'record')}, {_count(self.requests, 'request')}, "
            f"{_count(self.tokens, 'API token')}"
            + (f" (cap {self.cap})" if self.cap is not None else "")
        )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")
