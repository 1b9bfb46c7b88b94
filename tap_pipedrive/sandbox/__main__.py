"""Command line: ``python -m tap_pipedrive.sandbox --port 0 --seed 1 --scale 1.0``.

Prints one ``SANDBOX_URL=...`` line so scripts can pick up a random port, then serves until
SIGINT/SIGTERM and exits 0.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .server import Faults, Sandbox


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tap_pipedrive.sandbox", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--token", default="sandbox-token")
    p.add_argument("--rate-limit-every", type=int, default=0)
    p.add_argument("--server-error-every", type=int, default=0)
    p.add_argument("--latency-ms", type=int, default=0)
    p.add_argument("--truncate-once", action="store_true")
    p.add_argument("--burst-limit", type=int, default=0)
    a = p.parse_args(argv)
    faults = Faults(
        rate_limit_every=a.rate_limit_every,
        server_error_every=a.server_error_every,
        latency_ms=a.latency_ms,
        truncate_once=a.truncate_once,
        burst_limit=a.burst_limit,
    )
    sb = Sandbox(seed=a.seed, scale=a.scale, token=a.token, host=a.host, port=a.port, faults=faults)
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
