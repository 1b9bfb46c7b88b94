"""Command line: ``python -m tap_pipedrive.sandbox --port 0 --seed 1 --scale 1.0``.

Prints one ``SANDBOX_URL=...`` line so scripts can pick up a random port, then serves until
SIGINT/SIGTERM and exits 0.

Fault flags (all off by default; change them later with ``POST /_sandbox/faults``). Counters
count API requests (not ``/_sandbox/`` calls) from 1.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .server import RATE_LIMIT_HEADER_MODES, Faults, Sandbox


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tap_pipedrive.sandbox",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--token", default="sandbox-token")
    p.add_argument(
        "--bulk-edit",
        type=int,
        default=0,
        metavar="N",
        help="N deals edited four a second in one mass update (benchmarks: a burst of edits)",
    )
    p.add_argument(
        "--render-cache",
        action="store_true",
        help="keep every record rendered once in memory (benchmarks: a cheaper sandbox)",
    )
    f = p.add_argument_group("faults")
    f.add_argument(
        "--rate-limit-every", type=int, default=0, metavar="N", help="every Nth request -> 429"
    )
    f.add_argument(
        "--rate-limit-headers",
        choices=RATE_LIMIT_HEADER_MODES,
        default="all",
        help="headers of the --rate-limit-every 429: all (x-ratelimit-* and Retry-After: 1), "
        "ratelimit (x-ratelimit-* only, reset 1 s), retry-after (Retry-After: 1 only), none",
    )
    f.add_argument(
        "--server-error-every",
        type=int,
        default=0,
        metavar="M",
        help="every Mth request -> 500, 502, 503, 520, 524 in turn",
    )
    f.add_argument("--latency-ms", type=int, default=0, help="delay before every API answer")
    f.add_argument(
        "--truncate-once",
        action="store_true",
        help="cut the first 200 list response with data halfway through its body",
    )
    f.add_argument(
        "--non-json-once",
        action="store_true",
        help="answer the first 200 list response with data with a text/html page, status 200",
    )
    f.add_argument(
        "--burst-limit",
        type=int,
        default=0,
        metavar="B",
        help="more than B requests in a rolling 2 s -> 429",
    )
    f.add_argument(
        "--budget-exhausted-after",
        type=int,
        default=0,
        metavar="N",
        help="requests past the Nth -> 429, x-ratelimit-reset and Retry-After 36000 (daily "
        "budget spent)",
    )
    f.add_argument(
        "--block-after",
        type=int,
        default=0,
        metavar="N",
        help="requests past the Nth -> 403 with an HTML 'you have been blocked' page",
    )
    f.add_argument(
        "--drop-every",
        type=int,
        default=0,
        metavar="N",
        help="every Nth request: close the connection without a response",
    )
    f.add_argument(
        "--stall-every",
        type=int,
        default=0,
        metavar="N",
        help="every Nth request: sleep --stall-seconds before answering",
    )
    f.add_argument("--stall-seconds", type=float, default=5.0, metavar="S", help="default 5.0")
    f.add_argument(
        "--refused-paths",
        default="",
        metavar="PATH=STATUS,...",
        help="answer these exact paths 403, 404 or 410, e.g. /api/v2/projects=403 (an "
        "account without the feature)",
    )
    return p


def faults_from_args(a: argparse.Namespace) -> Faults:
    return Faults(
        rate_limit_every=a.rate_limit_every,
        server_error_every=a.server_error_every,
        latency_ms=a.latency_ms,
        truncate_once=a.truncate_once,
        burst_limit=a.burst_limit,
        rate_limit_headers=a.rate_limit_headers,
        budget_exhausted_after=a.budget_exhausted_after,
        block_after=a.block_after,
        drop_every=a.drop_every,
        stall_every=a.stall_every,
        stall_seconds=a.stall_seconds,
        non_json_once=a.non_json_once,
        refused_paths=a.refused_paths,
    )


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    a = p.parse_args(argv)
    try:
        faults = faults_from_args(a)
    except ValueError as exc:
        p.error(str(exc))
    sb = Sandbox(
        seed=a.seed,
        scale=a.scale,
        token=a.token,
        host=a.host,
        port=a.port,
        faults=faults,
        render_cache=a.render_cache,
        bulk_edit=a.bulk_edit,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    url = sb.start()
    sys.stdout.write(f"SANDBOX_URL={url}\n")
    sys.stdout.flush()
    while not stop.wait(0.5):
        pass
    sb.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
