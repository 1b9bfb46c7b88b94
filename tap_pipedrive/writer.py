"""Singer message output: buffered, with a flush at every STATE, and quiet on a broken pipe.

The SDK's default writer flushes stdout after every message (a system call per record) and
encodes with simplejson. Here records are encoded straight to UTF-8 bytes by msgspec (the
SDK's own `msgspec` extra: 2.6 us a deal against 17 us with the standard library's encoder
and a text stream) and written in blocks; SCHEMA and STATE messages flush, so
a target always receives a STATE together with every record before it, and a killed tap
loses only records no STATE covers. When the target stops reading (broken pipe), the tap
stops with one line instead of a traceback.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import json
import os
import sys
import typing as t

import msgspec.json
from singer_sdk.singerlib.encoding.simple import RecordMessage, SimpleSingerWriter

if t.TYPE_CHECKING:
    from singer_sdk.singerlib.encoding.simple import Message


def _default(value: t.Any) -> t.Any:
    if isinstance(value, dt.datetime):
        return value.isoformat(sep="T")
    if isinstance(value, decimal.Decimal):
        return float(value)
    return str(value)


_msgspec_encode = msgspec.json.Encoder(enc_hook=_default, decimal_format="number").encode
_text_encode = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_default
).encode
#: For what UTF-8 cannot carry: a string holding a lone surrogate (which JSON may carry
#: escaped, `"\ud800"`), written escaped as it came.
_ascii_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False, default=_default).encode


def _utf8(encode: t.Callable[[t.Any], t.Any], value: t.Any) -> bytes:
    """`value` encoded by `encode`, as UTF-8 bytes; a string UTF-8 cannot carry (a lone
    surrogate) makes the whole value go through `_ascii_encode` instead."""
    try:
        encoded = encode(value)
        return encoded if isinstance(encoded, bytes) else encoded.encode("utf-8")
    except UnicodeEncodeError:
        return _ascii_encode(value).encode("ascii")


def encode_record(record: dict[str, t.Any]) -> bytes:
    """A record as compact JSON in UTF-8: the same JSON values as the standard library
    writes (NaN and infinities, which JSON lacks, as null, as the SDK writes them)."""
    return _utf8(_msgspec_encode, record)


def encode_message(message: dict[str, t.Any]) -> bytes:
    """Any other message, encoded as the SDK's writer does (datetimes by `isoformat`)."""
    return _utf8(_text_encode, message)


#: Bytes of records gathered before they go to stdout in one write. Each write may hand
#: the interpreter to the threads parsing pages and then wait to get it back: a write per
#: record cost the v2 core streams a tenth of their run.
BLOCK_BYTES = 256 * 1024


class BufferedSingerWriter(SimpleSingerWriter):
    """Writes Singer messages as JSON lines to stdout's byte buffer: records in blocks,
    every other message with what came before it, flushed at once. Everything goes through
    the one buffer, so lines keep their order; a text stream without one (a test's
    `redirect_stdout`) gets text."""

    def __init__(self) -> None:
        super().__init__()
        self._block: list[bytes] = []
        self._block_bytes = 0
        #: Whether bytes are on their way to stdout: a stop (a signal's) raised then would
        #: leave a line cut in two; it waits in `stop_after_write` instead.
        self.writing = False
        self.stop_after_write: BaseException | None = None

    def serialize_message(self, message: Message) -> str:
        return encode_message(message.to_dict()).decode("utf-8")

    def write_message(self, message: Message) -> None:
        line = encode_message(message.to_dict()) + b"\n"
        if isinstance(message, RecordMessage):
            self._gather(line)
            return
        self._block.append(line)
        self.flush()
        with self._whole():
            try:
                sys.stdout.flush()
            except BrokenPipeError:
                target_stopped_reading()

    def write_record(self, prefix: bytes, record: dict[str, t.Any], suffix: bytes) -> None:
        """A RECORD line from its parts: `prefix` + the record as JSON + `suffix`."""
        self._gather(prefix, encode_record(record), suffix)

    def _gather(self, *parts: bytes) -> None:
        """Add to the block (joined once, when it goes out) and send it once it is full."""
        self._block += parts
        self._block_bytes += sum(map(len, parts))
        if self._block_bytes >= BLOCK_BYTES:
            self.flush()

    def flush(self) -> None:
        """Hand the records gathered so far to stdout (not flushing stdout itself).

        A stop (a signal's, see `TapPipedrive._handle_termination`) waits for the block to
        be written whole and let go: raised midway, it would cut a line in two (a target
        slow to read leaves the write blocked in the middle), and the final flush would
        then send the part already written again."""
        if not self._block:
            return
        block = b"".join(self._block)
        out = sys.stdout
        with self._whole():
            try:
                fd = _file_descriptor(out)
                if fd is not None:
                    # Straight to the descriptor, whole: a buffered stdout loses the rest
                    # of a write a signal interrupts (the pipe full, the target behind).
                    out.flush()  # anything written through it goes first
                    view = memoryview(block)
                    while view:
                        view = view[os.write(fd, view) :]
                elif (buffer := getattr(out, "buffer", None)) is not None:
                    buffer.write(block)
                else:
                    out.write(block.decode("utf-8"))
            except BrokenPipeError:
                target_stopped_reading()
            self._block.clear()
            self._block_bytes = 0

    @contextlib.contextmanager
    def _whole(self) -> t.Iterator[None]:
        """Defer a stop to the end of the block (see `flush`)."""
        self.writing = True
        try:
            yield
        finally:
            self.writing = False
        stop, self.stop_after_write = self.stop_after_write, None
        if stop is not None:
            raise stop


def _file_descriptor(out: t.Any) -> int | None:
    """The descriptor under a stdout that is a real file or pipe; None for one in memory
    (a test's capture)."""
    try:
        return int(out.fileno())
    except (AttributeError, OSError, ValueError):
        return None


def target_stopped_reading() -> t.NoReturn:
    """The downstream target exited: nobody reads what we write, so stop now, quietly."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.stderr.write("tap-pipedrive: the target stopped reading (broken pipe); stopping\n")
    sys.stderr.flush()
    os._exit(1)
