"""Checks on the files given on the command line, before the SDK reads them, so that a bad
file ends in one line that names it instead of a traceback."""

from __future__ import annotations

import datetime as dt
import json
import typing as t
from pathlib import Path

from tap_pipedrive.errors import ConfigError
from tap_pipedrive.streams import replication_keys
from tap_pipedrive.timeutil import parse_datetime

OPTIONS = ("--config", "--state", "--catalog")


def files_from_argv(argv: t.Sequence[str]) -> list[tuple[str, str]]:
    """`(option, path)` for each file option, in both `--opt path` and `--opt=path` forms."""
    found = []
    for index, arg in enumerate(argv):
        option, _, value = arg.partition("=")
        if option not in OPTIONS:
            continue
        if not value and index + 1 < len(argv):
            value = argv[index + 1]
        if value and not (option == "--config" and value == "ENV"):
            found.append((option, value))
    return found


def _load(option: str, path: str) -> t.Any:
    kind = option.removeprefix("--")
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"The {kind} file {path} does not exist")
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"The {kind} file {path} is not text (UTF-8 JSON expected)") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"The {kind} file {path} is not valid JSON: {exc.msg} at line {exc.lineno} "
            f"column {exc.colno}"
        ) from None


#: How far past this machine's clock a bookmark may be (Pipedrive's clock, time zones).
FUTURE_MARGIN = dt.timedelta(days=1)


def unwrap_state(state: t.Any) -> t.Any:
    """The state itself, from what `meltano state get` prints (`{"singer_state": ...}`) or
    from a STATE message line (`{"type": "STATE", "value": ...}`): either used to count as
    no state at all, a silent backfill."""
    if isinstance(state, dict) and "bookmarks" not in state:
        if isinstance(state.get("singer_state"), dict):
            return state["singer_state"]
        if state.get("type") == "STATE" and isinstance(state.get("value"), dict):
            return state["value"]
    return state


def check_state(state: t.Any, path: str) -> None:
    state = unwrap_state(state)
    if not isinstance(state, dict):
        raise ConfigError(f"The state file {path} is not a JSON object")
    bookmarks = state.get("bookmarks", {})
    if not isinstance(bookmarks, dict):
        raise ConfigError(f"The state file {path} has 'bookmarks' that are not an object")
    keys = replication_keys()
    unknown = sorted(set(bookmarks) - set(keys))
    if bookmarks and len(unknown) == len(bookmarks):
        raise ConfigError(
            f"The state file {path} does not belong to tap-pipedrive: it has bookmarks for "
            f"{', '.join(unknown[:5])}, none of which is a tap-pipedrive stream"
        )
    for stream, bookmark in bookmarks.items():
        if stream in unknown:
            continue
        if not isinstance(bookmark, dict):
            raise ConfigError(
                f"The state file {path} has a bookmark for {stream} that is not an object"
            )
        key = bookmark.get("replication_key")
        if key is not None and keys[stream] is not None and key != keys[stream]:
            raise ConfigError(
                f"The state file {path} has a bookmark for {stream} on {key!r}; tap-pipedrive "
                f"bookmarks {stream} on {keys[stream]!r}"
            )
        value = bookmark.get("replication_key_value")
        if value is None:
            continue
        try:
            when = parse_datetime(str(value))
        except ValueError:
            raise ConfigError(
                f"The state file {path} has a bookmark for {stream} that is not a time: {value!r}"
            ) from None
        if keys[stream] is not None and when > dt.datetime.now(dt.timezone.utc) + FUTURE_MARGIN:
            raise ConfigError(
                f"The state file {path} has a bookmark for {stream} in the future ({value}): "
                f"nothing would be read until then; correct or remove it"
            )


def check_catalog(catalog: t.Any, path: str) -> None:
    if not isinstance(catalog, dict) or not isinstance(catalog.get("streams"), list):
        raise ConfigError(f"The catalog file {path} is not a Singer catalog (no 'streams' list)")
    known = set(replication_keys())
    for entry in catalog["streams"]:
        name = (
            entry.get("tap_stream_id") or entry.get("stream") if isinstance(entry, dict) else None
        )
        if name in known:
            continue
        selected = any(
            meta.get("breadcrumb") == [] and (meta.get("metadata") or {}).get("selected")
            for meta in (entry.get("metadata") or [] if isinstance(entry, dict) else [])
        )
        if selected or entry.get("selected"):
            raise ConfigError(
                f"The catalog file {path} selects stream {name!r}, which tap-pipedrive does not "
                f"have; run --discover for the list of streams"
            )


def check_cli_files(argv: t.Sequence[str]) -> None:
    """Raise ConfigError naming the first file given on the command line that is unusable."""
    for option, path in files_from_argv(argv):
        content = _load(option, path)
        if option == "--config" and not isinstance(content, dict):
            raise ConfigError(f"The config file {path} is not a JSON object")
        if option == "--state":
            check_state(content, path)
        if option == "--catalog":
            check_catalog(content, path)
