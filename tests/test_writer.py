"""The message writer: msgspec-encoded records carry the same JSON as the standard
library's encoder, and every line reaches stdout in the order it was written."""

from __future__ import annotations

import datetime as dt
import io
import json
import sys
import typing as t
from pathlib import Path

import pytest
from singer_sdk.singerlib import RecordMessage, SchemaMessage, StateMessage

from tap_pipedrive.writer import BLOCK_BYTES, BufferedSingerWriter, encode_record

RECORD: dict[str, t.Any] = {
    "id": 7,
    "title": 'Zürich \u2013 東京 \u2028 deal "quoted" \\ </script>',
    "value": 1234.5,
    "tiny": 1e-7,
    "huge": 1e16,
    "negative_zero": -0.0,
    "big_int": 2**70,
    "flags": [True, False, None],
    "custom": {"amount": 0.1, "currency": "EUR", "nested": [{"a": 1}, {}]},
    "emoji": "🚀",
    "empty": "",
    "control": "tab\tnewline\nbell\x07",
}


def stdlib_json(value: t.Any) -> t.Any:
    """What the writer's output means, read back the standard library's way."""
    return json.loads(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def test_records_encode_to_the_same_json_values_as_the_standard_library() -> None:
    line = encode_record(RECORD)
    assert json.loads(line) == stdlib_json(RECORD)
    assert repr(json.loads(line)["huge"]) == "1e+16"  # a float stays a float, not an int
    assert line.decode("utf-8")  # valid UTF-8, non-ASCII text kept unescaped
    assert "東京".encode() in line


def test_values_json_cannot_carry_are_written_as_json_can() -> None:
    """NaN and infinities become null (as the SDK's writer writes them); a lone surrogate,
    which Pipedrive may send escaped and UTF-8 cannot encode, stays escaped."""
    assert json.loads(encode_record({"a": float("nan"), "b": float("inf")})) == {
        "a": None,
        "b": None,
    }
    line = encode_record({"name": "half \ud800 pair", "ok": "é"})
    assert json.loads(line) == {"name": "half \ud800 pair", "ok": "é"}


def write_all(writer: BufferedSingerWriter) -> None:
    writer.write_message(SchemaMessage("deals", {"type": "object"}, ["id"]))
    writer.write_record(b'{"type":"RECORD","stream":"deals","record":', {"id": 1}, b"}\n")
    writer.write_message(
        RecordMessage("deals", {"id": 2}, time_extracted=dt.datetime.now(dt.timezone.utc))
    )
    writer.write_record(b'{"type":"RECORD","stream":"deals","record":', {"id": 3}, b"}\n")
    writer.write_message(StateMessage({"bookmarks": {"deals": {"x": "ü"}}}))


@pytest.mark.parametrize("stdout_kind", ["bytes", "text"])
def test_lines_keep_their_order_on_a_byte_stream_and_on_a_text_stream(
    stdout_kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="utf-8") if stdout_kind == "bytes" else io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    write_all(BufferedSingerWriter())
    text = raw.getvalue().decode() if stdout_kind == "bytes" else out.getvalue()
    messages = [json.loads(line) for line in text.splitlines()]
    assert [m["type"] for m in messages] == ["SCHEMA", "RECORD", "RECORD", "RECORD", "STATE"]
    assert [m["record"]["id"] for m in messages if m["type"] == "RECORD"] == [1, 2, 3]
    assert messages[-1]["value"] == {"bookmarks": {"deals": {"x": "ü"}}}


def test_a_state_is_flushed_to_the_target_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records wait in the buffer; a STATE pushes them out with it, so a killed tap loses
    only records no STATE covers."""
    path = tmp_path / "stdout"
    with path.open("w", encoding="utf-8") as out:
        monkeypatch.setattr(sys, "stdout", out)
        writer = BufferedSingerWriter()
        writer.write_record(b'{"type":"RECORD","stream":"deals","record":', {"id": 1}, b"}\n")
        assert path.read_bytes() == b""
        writer.write_message(StateMessage({"bookmarks": {}}))
        assert path.read_bytes().count(b"\n") == 2


def test_records_go_out_in_blocks_and_the_rest_on_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A block leaves once it holds `BLOCK_BYTES`; what is left leaves on `flush`, which
    the tap calls however the run ends."""
    path = tmp_path / "stdout"
    prefix, suffix = b'{"type":"RECORD","stream":"notes","record":', b"}\n"
    record = {"id": 1, "content": "x" * 1000}
    per_line = len(prefix + encode_record(record) + suffix)
    with path.open("w", encoding="utf-8") as out:
        monkeypatch.setattr(sys, "stdout", out)
        writer = BufferedSingerWriter()
        lines = BLOCK_BYTES // per_line + 10
        for _ in range(lines):
            writer.write_record(prefix, record, suffix)
        out.flush()
        assert 0 < path.read_bytes().count(b"\n") < lines
        writer.flush()
        out.flush()
        assert path.read_bytes().count(b"\n") == lines
