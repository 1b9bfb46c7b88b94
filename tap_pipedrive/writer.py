"""Singer message output: buffered, with a flush at every STATE, and quiet on a broken pipe.

The SDK's default writer flushes stdout after every message (a system call per record) and
encodes with simplejson. Here records are encoded by the standard library's C encoder and
written in blocks; SCHEMA and STATE messages flush, so a target always receives a STATE
together with every record before it, and a killed tap loses only records no STATE covers.
When the target stops reading (broken pipe), the tap stops with one line instead of a
traceback.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import sys
import typing as t

from singer_sdk.singerlib.encoding.simple import RecordMessage, SimpleSingerWriter

if t.TYPE_CHECKING:
    from singer_sdk.singerlib.encoding.simple import Message


def _default(value: t.Any) -> t.Any:
    if isinstance(value, dt.datetime):
        return value.isoformat(sep="T")
    if isinstance(value, decimal.Decimal):
        return float(value)
    return str(value)


_encode = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_default
).encode


class BufferedSingerWriter(SimpleSingerWriter):
    """Writes Singer messages as JSON lines to stdout, flushing at every non-record."""

    def serialize_message(self, message: Message) -> str:
        return _encode(message.to_dict())

    def write_message(self, message: Message) -> None:
        try:
            sys.stdout.write(_encode(message.to_dict()) + "\n")
            if not isinstance(message, RecordMessage):
                sys.stdout.flush()
        except BrokenPipeError:
            target_stopped_reading()

    def write_record(self, prefix: str, record: dict[str, t.Any], suffix: str) -> None:
        """A RECORD line from its parts: `prefix` + the record as JSON + `suffix`."""
        try:
            sys.stdout.write(prefix + _encode(record) + suffix)
        except BrokenPipeError:
            target_stopped_reading()


def target_stopped_reading() -> t.NoReturn:
    """The downstream target exited: nobody reads what we write, so stop now, quietly."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.stderr.write("tap-pipedrive: the target stopped reading (broken pipe); stopping\n")
    sys.stderr.flush()
    os._exit(1)
