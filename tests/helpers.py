"""Running the real CLI in a subprocess and reading what it wrote."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import typing as t
from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

TAP = [sys.executable, "-m", "tap_pipedrive"]


@dataclass
class TapRun:
    """One finished run of the tap: its exit code, its output parsed, its stderr."""

    returncode: int
    stdout: str
    stderr: str

    @cached_property
    def messages(self) -> list[dict[str, t.Any]]:
        return parse_messages(self.stdout)

    def records(self, stream: str) -> list[dict[str, t.Any]]:
        return [
            m["record"] for m in self.messages if m["type"] == "RECORD" and m["stream"] == stream
        ]

    def ids(self, stream: str) -> set[t.Any]:
        return {record_key(stream, record) for record in self.records(stream)}

    def streams(self) -> set[str]:
        return {m["stream"] for m in self.messages if m["type"] == "RECORD"}

    @property
    def final_state(self) -> dict[str, t.Any]:
        states = [m["value"] for m in self.messages if m["type"] == "STATE"]
        return states[-1] if states else {}


def parse_messages(stdout: str) -> list[dict[str, t.Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def write_json(path: Path, value: t.Any) -> Path:
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


def run_tap(
    tmp_path: Path,
    config: dict[str, t.Any],
    *,
    state: dict[str, t.Any] | None = None,
    catalog: dict[str, t.Any] | None = None,
    extra_args: t.Sequence[str] = (),
    timeout: float = 300,
    env: dict[str, str] | None = None,
) -> TapRun:
    """Run `python -m tap_pipedrive` with config (and state, catalog) files."""
    args = [*TAP, "--config", str(write_json(tmp_path / "config.json", config))]
    if state is not None:
        args += ["--state", str(write_json(tmp_path / "state.json", state))]
    if catalog is not None:
        args += ["--catalog", str(write_json(tmp_path / "catalog.json", catalog))]
    done = subprocess.run(
        [*args, *extra_args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
    )
    return TapRun(done.returncode, done.stdout, done.stderr)


def run_until_killed(
    tmp_path: Path,
    config: dict[str, t.Any],
    catalog: dict[str, t.Any],
    stop: t.Callable[[dict[str, t.Any], list[dict[str, t.Any]]], bool],
) -> tuple[TapRun, bool]:
    """Run the CLI and SIGKILL it at the first message for which `stop(message, messages
    before it)` holds. Returns what it wrote up to that message, and whether it got there
    (False: the run ended first)."""
    args = [*TAP, "--config", str(write_json(tmp_path / "config.json", config))]
    args += ["--catalog", str(write_json(tmp_path / "catalog.json", catalog))]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    lines: list[str] = []
    messages: list[dict[str, t.Any]] = []
    stopped = False
    for line in process.stdout:
        message = json.loads(line)
        lines.append(line)
        if stop(message, messages):
            stopped = True
            break
        messages.append(message)
    process.send_signal(signal.SIGKILL)
    process.wait()
    return TapRun(process.returncode, "".join(lines), ""), stopped


def discover(tmp_path: Path, config: dict[str, t.Any]) -> dict[str, t.Any]:
    run = run_tap(tmp_path, config, extra_args=["--discover"])
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def select(catalog: dict[str, t.Any], streams: t.Iterable[str]) -> dict[str, t.Any]:
    """The catalog with only `streams` selected."""
    wanted = set(streams)
    for entry in catalog["streams"]:
        for meta in entry["metadata"]:
            if meta["breadcrumb"] == []:
                meta["metadata"]["selected"] = entry["tap_stream_id"] in wanted
    return catalog


def by_stream(messages: t.Iterable[dict[str, t.Any]]) -> dict[str, list[dict[str, t.Any]]]:
    grouped: dict[str, list[dict[str, t.Any]]] = defaultdict(list)
    for message in messages:
        if message["type"] == "RECORD":
            grouped[message["stream"]].append(message["record"])
    return grouped


def reported_unchanged(touched: t.Iterable[str]) -> set[str]:
    """The streams a run skips when only the streams `touched` changed since the last run:
    those whose `/v1/recents` item type reports no change."""
    from tap_pipedrive.streams import STREAM_TYPES

    classes = {cls.name: cls for cls in STREAM_TYPES}
    changed = {classes[name].changes_item for name in touched} - {None}
    return {
        cls.name for cls in STREAM_TYPES if cls.changes_item and cls.changes_item not in changed
    }


def field_definition_urls(host: str) -> list[str]:
    """Where the tap reads each entity's field definitions on `host` (`/v1/dealFields`,
    ..., `/api/v2/projectFields`)."""
    from tap_pipedrive.client import PipedriveV2Stream
    from tap_pipedrive.streams.fields import FIELDS_STREAM_OF

    return [
        f"{host}{'/api/v2' if issubclass(fields, PipedriveV2Stream) else '/v1'}{fields.path}"
        for fields in FIELDS_STREAM_OF.values()
    ]


def mock_an_account_without_custom_fields(host: str) -> None:
    """For `responses`: the tap reads `*Fields` to type custom fields, and `/recents` for
    deletions; the account has neither."""
    import responses

    for url in field_definition_urls(host):
        responses.get(url, json={"success": True, "data": [], "additional_data": {}})
    responses.get(f"{host}/v1/recents", json={"success": True, "data": None})


def record_key(stream: str, record: dict[str, t.Any]) -> t.Any:
    """A record's primary key, as the sandbox's truth gives it: `id`, or for the deal change
    log `(deal_id, object, item_id)`, for project fields (v2 field definitions have no id)
    `field_code`."""
    if stream == "deal_flow":
        return (record["deal_id"], record["object"], record["item_id"])
    if stream == "project_fields":
        return record["field_code"]
    return record["id"]
