"""`make bench`: how fast tap-pipedrive extracts an account, and what it costs in API budget.

Starts the bundled Pipedrive sandbox in its own process (`python -m tap_pipedrive.sandbox`,
so its CPU is not the tap's), then, against the same sandbox:

1. **full run**: the real CLI, `tap-pipedrive --config cfg.json > /dev/null`, default stream
   selection, `start_date` 2000-01-01 (everything). Records, requests and tokens per stream.
2. **floor**: a minimal `requests` + `json` loop (in its own process) that reads the same
   pages of the five v2 core streams (deals, persons, organizations, activities, products:
   same endpoints and query as the tap's streams build them, 500 a page, cursor paging) and
   writes Singer RECORD lines to /dev/null.
3. **core run**: the tap again, restricted to those five streams by a catalog, so that
   `tap / floor` compares the same work.

Measured per process: wall time; user+sys CPU and peak RSS from `os.wait4()` on that very
process (`ru_maxrss`), not RUSAGE_CHILDREN, which would mix in the sandbox and the floor;
the sandbox's CPU from `/proc/<pid>/stat` before and after each run. Records, requests and
tokens per stream come from the tap's `API usage:` log lines (stderr); requests are
cross-checked against the sandbox's request log (`/_sandbox/requests`), tokens against the
specs' `x-token-cost` (`tap_pipedrive/schemas/_token_costs.json`) and records against the
sandbox's ground truth (`/_sandbox/truth`).

`--latency-ms L --burst-limit B` makes the sandbox delay every response and answer 429 past
B requests in a rolling 2 s; the report then compares records/s with the ceiling that burst
limit allows (500 records x B / 2 s) and counts the 429s the tap drew.

Standard library and `requests` only (plus the tap itself, which it runs, and whose streams
give the floor its URLs and queries). Results: `benchmarks/README.md`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from tap_pipedrive.sandbox import LISTED_WITH_DELETED

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
START_DATE = "2000-01-01T00:00:00Z"
PAGE_SIZE = 500
BURST_WINDOW_S = 2.0
CORE_STREAMS = ("deals", "persons", "organizations", "activities", "products")
#: Records of the default streams per unit of sandbox scale (seed 1), plus the fixed small
#: tables: 13,557 records at scale 1, 97,623 at 7.4, 974,406 at 74 (see README).
RECORDS_PER_SCALE = 13_160
FIXED_RECORDS = 250

_USAGE = re.compile(r"API usage: (\S+): (\d+) records?, (\d+) requests?, (\d+) tokens?")
_TOTAL = re.compile(r"API usage: run total: (\d+) records?, (\d+) requests?, (\d+) API tokens?")
_RETRY = re.compile(r"Retrying (\S+) in [\d.]+ s \(try \d+ of \d+\): (.*)")
_PAUSE = re.compile(r"Rate-limit window spent; pausing ([\d.]+) s")


# ----------------------------------------------------------------------------- processes


@dataclass
class Measured:
    """One finished child process: wall time and its own rusage."""

    cmd: list[str]
    returncode: int
    wall_s: float
    user_s: float
    sys_s: float
    maxrss_mb: float
    stderr: str = field(repr=False, default="")
    stdout: str = field(repr=False, default="")

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s


def run_measured(
    cmd: list[str],
    *,
    timeout: float,
    stderr_path: Path,
    stdout_path: Path | None = None,
) -> Measured:
    """Run `cmd` with stdout to /dev/null (or a file) and stderr to a file; wait4() it."""
    with (
        stderr_path.open("wb") as err,
        stdout_path.open("wb") if stdout_path else open(os.devnull, "wb") as out,
    ):
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        timer = threading.Timer(timeout, _kill, (proc.pid,))
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # already reaped: tell Popen
    return Measured(
        cmd=cmd,
        returncode=proc.returncode,
        wall_s=wall,
        user_s=usage.ru_utime,
        sys_s=usage.ru_stime,
        maxrss_mb=usage.ru_maxrss / 1024,  # Linux: kilobytes
        stderr=stderr_path.read_text(errors="replace"),
        stdout=stdout_path.read_text(errors="replace") if stdout_path else "",
    )


def _kill(pid: int) -> None:
    print(f"bench: process {pid} exceeded --timeout, killing it", file=sys.stderr)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


class SandboxProcess:
    """`python -m tap_pipedrive.sandbox` in a child process, and its control API."""

    def __init__(
        self,
        seed: int,
        scale: float,
        latency_ms: int = 0,
        burst_limit: int = 0,
        render_cache: bool = False,
        bulk_edit: int = 0,
    ):
        self.cmd = [
            sys.executable,
            "-m",
            "tap_pipedrive.sandbox",
            "--port",
            "0",
            "--seed",
            str(seed),
            "--scale",
            str(scale),
        ]
        if latency_ms:
            self.cmd += ["--latency-ms", str(latency_ms)]
        if burst_limit:
            self.cmd += ["--burst-limit", str(burst_limit)]
        if render_cache:
            self.cmd += ["--render-cache"]
        if bulk_edit:
            self.cmd += ["--bulk-edit", str(bulk_edit)]
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.token = "sandbox-token"
        self.http = requests.Session()

    def __enter__(self) -> SandboxProcess:
        self.proc = subprocess.Popen(
            self.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # the sandbox builds its data set first
        if not line.startswith("SANDBOX_URL="):
            self.proc.kill()
            raise RuntimeError(f"sandbox did not start: {line!r} {self.proc.stderr.read()}")
        self.url = line.split("=", 1)[1].strip()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cpu_s(self) -> float:
        """User+sys CPU seconds the sandbox process has used so far."""
        assert self.proc is not None
        stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def requests_by_path(self) -> dict[str, int]:
        return self.http.get(f"{self.url}/_sandbox/requests", timeout=60).json()["by_path"]

    def requests_per_second(self) -> list[int]:
        """How many requests arrived in each second after the first: where the wire idled."""
        answer = self.http.get(
            f"{self.url}/_sandbox/requests", params={"timeline": 1}, timeout=60
        ).json()
        seconds = [int(at) for at, _path in answer.get("timeline", [])]
        return [seconds.count(second) for second in range(max(seconds, default=-1) + 1)]

    def set_faults(self, **faults: int) -> None:
        """Replace the sandbox's faults (latency, burst limit) for what follows."""
        self.http.post(f"{self.url}/_sandbox/faults", json=faults, timeout=60).raise_for_status()

    def reset_requests(self) -> None:
        self.http.post(f"{self.url}/_sandbox/reset_requests", timeout=60).raise_for_status()

    def truth_count(self, stream: str) -> int | None:
        params = {"stream": stream, "since": START_DATE}
        if stream in LISTED_WITH_DELETED:
            params["with_deleted"] = "1"
        response = self.http.get(f"{self.url}/_sandbox/truth", params=params, timeout=300)
        return len(response.json()["ids"]) if response.ok else None


# ----------------------------------------------------------------------------- the tap


def tap_command() -> list[str]:
    script = BIN / "tap-pipedrive"
    return [str(script)] if script.exists() else [sys.executable, "-m", "tap_pipedrive"]


def stream_classes() -> dict[str, Any]:
    """The tap's streams, and `recents`: its one `/v1/recents` read a run, which it reports
    as a stream of its own in its API usage (no records)."""
    from tap_pipedrive.client import RecentsStream
    from tap_pipedrive.streams import STREAM_TYPES

    return {cls.name: cls for cls in (*STREAM_TYPES, RecentsStream)}


def path_router() -> list[tuple[re.Pattern[str], str]]:
    """(regex on the request path, stream name), from the stream classes (url_base + path)."""
    from tap_pipedrive.client import PipedriveV2Stream

    routes = []
    for name, cls in stream_classes().items():
        prefix = "/api/v2" if issubclass(cls, PipedriveV2Stream) else "/v1"
        pattern = re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(prefix + cls.path))
        routes.append((re.compile(pattern + "/?$"), name))
    return routes


def spec_cost_of(api: str, path: str) -> int | None:
    """The specs' `x-token-cost` of one request to `path` (None: the specs give none)."""
    costs = json.loads((ROOT / "tap_pipedrive/schemas/_token_costs.json").read_text())
    return costs.get(api, {}).get(re.sub(r"\{[^}]*\}", "{id}", path))


def parse_usage(stderr: str) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    streams: dict[str, dict[str, int]] = {}
    total: dict[str, int] = {}
    for line in stderr.splitlines():
        if m := _TOTAL.search(line):
            total = dict(zip(("records", "requests", "tokens"), map(int, m.groups()), strict=True))
        elif m := _USAGE.search(line):
            records, reqs, tokens = map(int, m.groups()[1:])
            streams[m.group(1)] = {"records": records, "requests": reqs, "tokens": tokens}
    return streams, total


def parse_retries(stderr: str) -> dict[str, int]:
    out: dict[str, Any] = {"retries": 0, "retries_429": 0, "pauses": 0, "paused_s": 0.0}
    for line in stderr.splitlines():
        if m := _RETRY.search(line):
            out["retries"] += 1
            out["retries_429"] += " 429 " in f" {m.group(2)} "
        elif m := _PAUSE.search(line):
            out["pauses"] += 1
            out["paused_s"] += float(m.group(1))
    return out


def write_core_catalog(config: Path, catalog: Path, logs: Path, timeout: float) -> None:
    """`--discover`, then select only the v2 core streams."""
    result = run_measured(
        [*tap_command(), "--config", str(config), "--discover"],
        timeout=timeout,
        stderr_path=logs / "discover.stderr",
        stdout_path=catalog,
    )
    if result.returncode != 0:
        raise SystemExit(f"bench: discovery failed:\n{result.stderr[-2000:]}")
    doc = json.loads(result.stdout)
    for entry in doc["streams"]:
        selected = entry["tap_stream_id"] in CORE_STREAMS
        for md in entry.get("metadata", []):
            if md.get("breadcrumb") == []:
                md["metadata"]["selected"] = selected
    catalog.write_text(json.dumps(doc))


def run_tap(
    sandbox: SandboxProcess,
    name: str,
    args: list[str],
    logs: Path,
    timeout: float,
    truth: bool = False,
) -> dict[str, Any]:
    """One measured run of the tap CLI, joined with the sandbox's view of it."""
    sandbox.reset_requests()
    cpu0 = sandbox.cpu_s()
    result = run_measured(
        [*tap_command(), *args], timeout=timeout, stderr_path=logs / f"{name}.stderr"
    )
    sandbox_cpu = sandbox.cpu_s() - cpu0
    if result.returncode != 0:
        tail = "\n".join(result.stderr.splitlines()[-15:])
        raise SystemExit(f"bench: the tap ({name}) exited {result.returncode}:\n{tail}")
    per_stream, total = parse_usage(result.stderr)
    by_path = sandbox.requests_by_path()
    per_second = sandbox.requests_per_second()
    join_requests(per_stream, by_path)
    if truth:
        for stream, usage in per_stream.items():
            usage["truth"] = sandbox.truth_count(stream) if stream != "recents" else 0
    records = total.get("records", 0)
    run = {
        "command": " ".join(["tap-pipedrive", *args]) + " > /dev/null",
        "wall_s": result.wall_s,
        "user_s": result.user_s,
        "sys_s": result.sys_s,
        "cpu_s": result.cpu_s,
        "peak_rss_mb": result.maxrss_mb,
        "sandbox_cpu_s": sandbox_cpu,
        "records": records,
        "requests": total.get("requests", 0),
        "tokens": total.get("tokens", 0),
        "records_per_s": records / result.wall_s,
        "records_per_cpu_s": records / result.cpu_s if result.cpu_s else None,
        "sandbox_records_per_cpu_s": records / sandbox_cpu if sandbox_cpu else None,
        "served_requests": sum(by_path.values()),
        "served_by_path": dict(sorted(by_path.items())),
        "requests_per_second": per_second,
        "streams": dict(sorted(per_stream.items())),
        **parse_retries(result.stderr),
    }
    run["records_per_s_unpaused"] = records / max(result.wall_s - run["paused_s"], 1e-9)
    return run


def join_requests(per_stream: dict[str, dict[str, Any]], by_path: dict[str, int]) -> None:
    """Split each stream's requests (the tap's count) into those to its own endpoint (the
    sandbox's log) and auxiliary ones (none today: `recents` has a line of its own), and
    work out the tokens the specs' costs make of them."""
    routes = path_router()
    classes = stream_classes()
    own: dict[str, int] = {}
    for path, count in by_path.items():
        stream = next((s for pattern, s in routes if pattern.match(path)), None)
        if stream is not None:
            own[stream] = own.get(stream, 0) + count
    recents_cost = spec_cost_of("v1", "/recents")
    for stream, usage in per_stream.items():
        usage["own_requests"] = own.get(stream, 0)
        usage["aux_requests"] = usage["requests"] - usage["own_requests"]
        cls = classes.get(stream)
        cost = spec_cost_of(cls.api_version, cls.path) if cls is not None else None
        aux_cost = recents_cost if getattr(cls, "recents_item", None) else None
        if cost is None or (usage["aux_requests"] and aux_cost is None):
            usage["spec_tokens"] = None
        else:
            usage["spec_tokens"] = cost * usage["own_requests"] + (aux_cost or 0) * max(
                usage["aux_requests"], 0
            )


# ----------------------------------------------------------------------------- the floor


def floor_query_main(config_path: str) -> None:
    """Print the URL and query of the first page of each core stream, as the tap builds
    them (`bench.py --floor-query CONFIG`; in its own process to keep the SDK's imports and
    logging out of the benchmark's)."""
    from tap_pipedrive.tap import TapPipedrive

    config = json.loads(Path(config_path).read_text())
    tap = TapPipedrive(config=config, parse_env_config=False)
    streams = []
    for name in CORE_STREAMS:
        stream = tap.streams[name]
        # What the SDK does before a sync: the start value `updated_since` comes from.
        stream._write_starting_replication_value(None)
        params = stream.get_url_params(None, None)
        streams.append([name, stream.get_url(None), params])
    print(json.dumps({"token": config["api_key"], "streams": streams}))


def floor_spec(config: Path, logs: Path, timeout: float) -> dict[str, Any]:
    result = run_measured(
        [sys.executable, str(Path(__file__).resolve()), "--floor-query", str(config)],
        timeout=timeout,
        stderr_path=logs / "floor-query.stderr",
        stdout_path=logs / "floor-query.stdout",
    )
    if result.returncode != 0:
        raise SystemExit(f"bench: reading the tap's queries failed:\n{result.stderr[-2000:]}")
    spec = json.loads(result.stdout.strip().splitlines()[-1])
    for name, _, params in spec["streams"]:
        if params.get("limit") != PAGE_SIZE or "updated_since" not in params:
            raise SystemExit(f"bench: unexpected query for {name}: {params}")
    return spec


def floor_main(spec_path: str) -> None:
    """The floor: fetch every page, parse it, write Singer RECORD lines to /dev/null.

    Runs in its own process (`bench.py --floor-spec FILE`) so that its CPU and RSS are
    measured like the tap's. Prints one JSON line with what it read."""
    spec = json.loads(Path(spec_path).read_text())
    session = requests.Session()
    session.headers.update({"x-api-token": spec["token"], "Accept": "application/json"})
    counts: dict[str, dict[str, int]] = {}
    start = time.perf_counter()
    with open(os.devnull, "w") as out:
        for stream, url, params in spec["streams"]:
            records = pages = throttled = 0
            cursor = None
            while True:
                query = {**params, "cursor": cursor} if cursor else params
                response = session.get(url, params=query, timeout=60)
                pages += 1
                if response.status_code == 429:
                    throttled += 1
                    time.sleep(float(response.headers.get("Retry-After") or 1))
                    continue
                response.raise_for_status()
                page = json.loads(response.content)
                for record in page.get("data") or ():
                    out.write(json.dumps({"type": "RECORD", "stream": stream, "record": record}))
                    out.write("\n")
                    records += 1
                cursor = (page.get("additional_data") or {}).get("next_cursor")
                if not cursor:
                    break
            counts[stream] = {"records": records, "requests": pages, "throttled": throttled}
    print(json.dumps({"loop_s": time.perf_counter() - start, "streams": counts}))


def run_floor(sandbox: SandboxProcess, config: Path, logs: Path, timeout: float) -> dict[str, Any]:
    spec = floor_spec(config, logs, timeout)
    spec_path = logs / "floor-spec.json"
    spec_path.write_text(json.dumps(spec))
    sandbox.reset_requests()
    cpu0 = sandbox.cpu_s()
    result = run_measured(
        [sys.executable, str(Path(__file__).resolve()), "--floor-spec", str(spec_path)],
        timeout=timeout,
        stderr_path=logs / "floor.stderr",
        stdout_path=logs / "floor.stdout",
    )
    sandbox_cpu = sandbox.cpu_s() - cpu0
    if result.returncode != 0:
        raise SystemExit(f"bench: the floor exited {result.returncode}:\n{result.stderr[-2000:]}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    records = sum(s["records"] for s in report["streams"].values())
    return {
        "command": "python benchmarks/bench.py --floor-spec FILE > /dev/null",
        "wall_s": result.wall_s,
        "loop_s": report["loop_s"],
        "user_s": result.user_s,
        "sys_s": result.sys_s,
        "cpu_s": result.cpu_s,
        "peak_rss_mb": result.maxrss_mb,
        "sandbox_cpu_s": sandbox_cpu,
        "records": records,
        "requests": sum(s["requests"] for s in report["streams"].values()),
        "throttled": sum(s["throttled"] for s in report["streams"].values()),
        "records_per_s": records / result.wall_s,
        "records_per_cpu_s": records / result.cpu_s if result.cpu_s else None,
        "sandbox_records_per_cpu_s": records / sandbox_cpu if sandbox_cpu else None,
        "streams": report["streams"],
        "queries": {name: [url, params] for name, url, params in spec["streams"]},
    }


# ----------------------------------------------------------------------------- profile


def run_profile(config: Path, out: Path, logs: Path, timeout: float, top: int) -> list[str]:
    """The full run once more under cProfile; returns the top cumulative entries."""
    import io
    import pstats

    cmd = [sys.executable, "-m", "cProfile", "-o", str(out), "-m", "tap_pipedrive"]
    result = run_measured(
        [*cmd, "--config", str(config)], timeout=timeout, stderr_path=logs / "profile.stderr"
    )
    if result.returncode != 0:
        raise SystemExit(f"bench: the profiled run failed:\n{result.stderr[-2000:]}")
    buffer = io.StringIO()
    stats = pstats.Stats(str(out), stream=buffer)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return [f"profiled wall {result.wall_s:.1f} s (cProfile overhead included)", buffer.getvalue()]


# ----------------------------------------------------------------------------- report


def _n(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _per_k(value: int, records: int) -> str:
    return f"{1000 * value / records:,.1f}" if records else "-"


def stream_table(run: dict[str, Any]) -> list[str]:
    head = (
        f"{'stream':<22}{'records':>10}{'truth':>10}{'requests':>10}{'tokens':>10}"
        f"{'req/1k rec':>12}{'tok/1k rec':>12}"
    )
    lines = [head, "-" * len(head)]
    notes, aux = [], []
    for stream, u in run["streams"].items():
        truth = u.get("truth")
        lines.append(
            f"{stream:<22}{u['records']:>10,}{_n(truth):>10}{u['requests']:>10,}"
            f"{u['tokens']:>10,}{_per_k(u['requests'], u['records']):>12}"
            f"{_per_k(u['tokens'], u['records']):>12}"
        )
        if u["aux_requests"]:
            aux.append(f"{stream} {u['aux_requests']}")
        spec = u.get("spec_tokens")
        if spec is not None and spec != u["tokens"]:
            notes.append(
                f"{stream}: the tap charged {u['tokens']} tokens, the specs' costs make {spec}"
            )
        if truth is not None and truth != u["records"]:
            notes.append(f"{stream}: {u['records']} records, the sandbox's truth has {truth}")
    lines.append("-" * len(head))
    lines.append(
        f"{'total':<22}{run['records']:>10,}{'':>10}{run['requests']:>10,}{run['tokens']:>10,}"
        f"{_per_k(run['requests'], run['records']):>12}{_per_k(run['tokens'], run['records']):>12}"
    )
    if run["served_requests"] != run["requests"]:
        notes.append(
            f"the tap counted {run['requests']} requests, the sandbox served "
            f"{run['served_requests']}"
        )
    if aux:
        paths = ", ".join(
            p for p in run["served_by_path"] if not any(r.match(p) for r, _ in path_router())
        )
        notes.append(f"requests include auxiliary ones ({paths}): {', '.join(aux)}")
    return lines + [f"  note: {note}" for note in notes]


def run_summary(run: dict[str, Any]) -> list[str]:
    other = run["wall_s"] - run["cpu_s"] - run["sandbox_cpu_s"]
    paused = (
        f"; {run['paused_s']:.1f} s of it the tap paused ({run['pauses']} times) at "
        f"x-ratelimit-remaining 0: without them {run['records_per_s_unpaused']:,.0f} records/s"
        if run["pauses"]
        else ""
    )
    return [
        f"wall {run['wall_s']:.1f} s, {_n(run['records_per_s'])} records/s; "
        f"peak RSS {run['peak_rss_mb']:.0f} MB",
        f"tap CPU {run['cpu_s']:.1f} s (user {run['user_s']:.1f}, sys {run['sys_s']:.1f}): "
        f"{_n(run['records_per_cpu_s'])} records per tap CPU-second",
        f"sandbox CPU {run['sandbox_cpu_s']:.1f} s: it serves "
        f"{_n(run['sandbox_records_per_cpu_s'])} records per CPU-second",
        f"wall - tap CPU - sandbox CPU = {other:.1f} s{paused}",
    ]


def comparison(floor: dict[str, Any], core: dict[str, Any]) -> list[str]:
    head = (
        f"{'':<8}{'records':>10}{'requests':>10}{'wall s':>9}{'rec/s':>9}{'CPU s':>8}"
        f"{'rec/CPU-s':>11}{'RSS MB':>8}{'sandbox CPU s':>15}"
    )
    lines = [head, "-" * len(head)]
    for label, run in (("floor", floor), ("tap", core)):
        lines.append(
            f"{label:<8}{run['records']:>10,}{run['requests']:>10,}{run['wall_s']:>9.1f}"
            f"{run['records_per_s']:>9,.0f}{run['cpu_s']:>8.1f}"
            f"{_n(run['records_per_cpu_s']):>11}{run['peak_rss_mb']:>8.0f}"
            f"{run['sandbox_cpu_s']:>15.1f}"
        )
    lines.append(
        f"tap / floor: {core['records_per_s'] / floor['records_per_s']:.2f} in records/s (wall), "
        f"{core['records_per_cpu_s'] / floor['records_per_cpu_s']:.2f} in records per CPU-second"
    )
    if core["records"] != floor["records"]:
        lines.append(
            f"  note: the tap read {core['records']} records, the floor {floor['records']}"
        )
    lines.append(f"floor loop alone {floor['loop_s']:.1f} s (process start excluded)")
    if core["pauses"]:
        lines.append(f"tap paused {core['pauses']} times ({core['paused_s']:.1f} s) at remaining 0")
    return lines


def latency_lines(run: dict[str, Any], latency_ms: int, burst: int) -> list[str]:
    lines = [f"latency {latency_ms} ms a response, burst limit {burst or 'none'}"]
    if latency_ms:
        lines.append(
            f"one request at a time reaches at most {PAGE_SIZE * 1000 / latency_ms:,.0f} "
            f"records/s (500 a page / {latency_ms} ms); latency alone costs this run "
            f"{run['requests'] * latency_ms / 1000:.1f} s of its {run['wall_s']:.1f} s"
        )
    if burst:
        ceiling = PAGE_SIZE * burst / BURST_WINDOW_S
        req_bound = run["records"] / (run["requests"] / (burst / BURST_WINDOW_S))
        lines += [
            f"ceiling {ceiling:,.0f} records/s (500 x {burst} / 2 s); for this run's "
            f"{run['requests']} requests the limit allows at most {req_bound:,.0f} records/s",
            f"achieved {run['records_per_s']:,.0f} records/s = "
            f"{run['records_per_s'] / ceiling:.1%} of the ceiling",
        ]
        per_second = run.get("requests_per_second") or []
        if per_second:
            rate = burst / BURST_WINDOW_S
            unused = sum(max(rate - n, 0) for n in per_second)
            lines += [
                "requests the sandbox received in each second of the run: "
                + " ".join(str(n) for n in per_second),
                f"the burst limit allowed {rate:g} a second: {unused:.0f} requests' worth "
                f"({unused / rate:.1f} s) went unused",
            ]
    lines.append(
        f"429s drawn: {run['retries_429']} (retries of any kind: {run['retries']}); "
        f"pauses at x-ratelimit-remaining 0: {run['pauses']}"
    )
    return lines


# ----------------------------------------------------------------------------- main


def code_version() -> dict[str, Any]:
    """The commit the tap runs from, and its files changed since (the install is editable)."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
            ).stdout
        except OSError:
            return ""

    changed = git("status", "--porcelain", "--", "tap_pipedrive")
    return {
        "commit": git("rev-parse", "--short", "HEAD").strip(),
        "tap_tree": git("rev-parse", "--short", "HEAD:tap_pipedrive").strip(),
        "changed": [line[3:] for line in changed.splitlines() if line.strip()],
    }


def scale_for(records: int) -> float:
    return round(max(records - FIXED_RECORDS, 1) / RECORDS_PER_SCALE, 2)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="benchmarks/bench.py", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    p.add_argument(
        "--records",
        type=int,
        default=100_000,
        help="about this many records across the default streams (default 100000)",
    )
    p.add_argument("--scale", type=float, help="sandbox scale (overrides --records)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--latency-ms", type=int, default=0, help="sandbox delay per response")
    p.add_argument("--burst-limit", type=int, default=0, help="sandbox 429 past B requests/2 s")
    p.add_argument("--no-floor", action="store_true", help="skip the floor and the core run")
    p.add_argument(
        "--bulk-edit",
        type=int,
        default=0,
        metavar="N",
        help="sandbox: N deals edited in one mass update, four a second (a burst of edits)",
    )
    p.add_argument(
        "--warm-sandbox",
        action="store_true",
        help="sandbox keeps rendered records in memory, filled by one untimed run first",
    )
    p.add_argument("--profile", metavar="FILE", help="also run the tap under cProfile to FILE")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per process (3600)")
    p.add_argument("--logs", metavar="DIR", help="keep config, catalog and stderr logs here")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON")
    p.add_argument("--floor-spec", help=argparse.SUPPRESS)  # internal: run the floor
    p.add_argument("--floor-query", help=argparse.SUPPRESS)  # internal: the tap's queries
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.floor_spec:
        floor_main(args.floor_spec)
        return 0
    if args.floor_query:
        floor_query_main(args.floor_query)
        return 0
    scale = args.scale if args.scale is not None else scale_for(args.records)
    with tempfile.TemporaryDirectory(prefix="tap-pipedrive-bench-") as tmp:
        logs = Path(args.logs) if args.logs else Path(tmp)
        logs.mkdir(parents=True, exist_ok=True)
        return bench(args, scale, logs)


def bench(args: argparse.Namespace, scale: float, logs: Path) -> int:
    results: dict[str, Any] = {
        "date": dt.date.today().isoformat(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "sandbox": {
            "seed": args.seed,
            "scale": scale,
            "latency_ms": args.latency_ms,
            "burst_limit": args.burst_limit,
        },
        "argv": sys.argv[1:],
        "code": code_version(),
    }

    def say(*lines: str) -> None:
        for line in lines:
            print(line, flush=True)

    started = time.perf_counter()
    with SandboxProcess(
        args.seed, scale, args.latency_ms, args.burst_limit, args.warm_sandbox, args.bulk_edit
    ) as sandbox:
        results["sandbox"]["startup_s"] = time.perf_counter() - started
        results["sandbox"]["command"] = " ".join(sandbox.cmd[1:])
        config = logs / "config.json"
        config.write_text(
            json.dumps({"api_key": sandbox.token, "api_url": sandbox.url, "start_date": START_DATE})
        )
        if args.warm_sandbox:
            # One untimed run without latency fills the sandbox's render cache; every run
            # measured after it is served from memory.
            warm_started = time.perf_counter()
            sandbox.set_faults()
            run_tap(sandbox, "warm-up", ["--config", str(config)], logs, args.timeout)
            sandbox.set_faults(latency_ms=args.latency_ms, burst_limit=args.burst_limit)
            results["sandbox"]["warm_up_s"] = time.perf_counter() - warm_started
        say(
            f"tap-pipedrive benchmark, {results['date']}: {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}, tap at {results['code']['commit']}"
            + (
                f" + changes in {', '.join(results['code']['changed'])}"
                if results["code"]["changed"]
                else ""
            ),
            f"sandbox: {results['sandbox']['command']} (ready in "
            f"{results['sandbox']['startup_s']:.1f} s)",
            "",
            "Full run, default streams: tap-pipedrive --config config.json > /dev/null",
        )
        full = run_tap(sandbox, "full", ["--config", str(config)], logs, args.timeout, truth=True)
        results["full"] = full
        say(*stream_table(full), *run_summary(full))
        if args.latency_ms or args.burst_limit:
            if args.burst_limit:
                ceiling = PAGE_SIZE * args.burst_limit / BURST_WINDOW_S
                results["full"]["ceiling_records_per_s"] = ceiling
            say("", *latency_lines(full, args.latency_ms, args.burst_limit))
        if not args.no_floor:
            catalog = logs / "catalog-core.json"
            write_core_catalog(config, catalog, logs, args.timeout)
            say("", f"Floor vs tap on the v2 core streams ({', '.join(CORE_STREAMS)})")
            floor = run_floor(sandbox, config, logs, args.timeout)
            core_args = ["--config", str(config), "--catalog", str(catalog)]
            core = run_tap(sandbox, "core", core_args, logs, args.timeout)
            results["floor"], results["core"] = floor, core
            results["ratio"] = {
                "records_per_s": core["records_per_s"] / floor["records_per_s"],
                "records_per_cpu_s": core["records_per_cpu_s"] / floor["records_per_cpu_s"],
            }
            say(*comparison(floor, core))
            if args.latency_ms or args.burst_limit:
                say(f"floor 429s: {floor['throttled']}; tap core run 429s: {core['retries_429']}")
        if args.profile:
            say("", f"Profile of the full run (cProfile -> {args.profile})")
            say(*run_profile(config, Path(args.profile), logs, args.timeout, 25))
    results["code_after"] = code_version()
    if any(results["code_after"][k] != results["code"][k] for k in ("tap_tree", "changed")):
        say(
            "",
            f"warning: the tap's code changed during the benchmark ({results['code']} -> "
            f"{results['code_after']}): the runs above may not measure the same code",
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"\nresults written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
