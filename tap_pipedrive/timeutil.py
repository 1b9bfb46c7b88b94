"""Pipedrive's timestamp formats, parsed once and written back as one canonical RFC 3339 form.

Pipedrive writes `2024-05-01 10:20:00` (v1, UTC without a zone), `2024-05-01T10:20:00.000Z`
(leads) and `2024-05-01T10:20:00Z` (v2). The tap emits every timestamp as
`2024-05-01T10:20:00+00:00` (microseconds only when non-zero). In that one form, string order
equals time order, which matters because the SDK compares bookmark values as strings.
"""

from __future__ import annotations

import datetime as dt

from dateutil import parser as date_parser

UTC = dt.timezone.utc


def parse_datetime(value: str) -> dt.datetime:
    """Parse any ISO 8601 / Pipedrive timestamp; a naive one means UTC. Raises ValueError."""
    text = value.strip()
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            parsed = date_parser.isoparse(text)
        except (ValueError, OverflowError) as exc:
            raise ValueError(f"not an ISO 8601 date or date-time: {value!r}") from exc
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_datetime(value: dt.datetime) -> str:
    """The canonical form: UTC, `+00:00`, microseconds only when non-zero."""
    return value.astimezone(UTC).isoformat()


def to_rfc3339(value: object) -> object:
    """Normalise one timestamp value from any Pipedrive format; other values pass through.

    The two common shapes are rewritten with string slicing, because this runs for every
    timestamp field of every record.
    """
    if not isinstance(value, str):
        return value
    size = len(value)
    if size == 19 and value[10] == " ":  # v1: 2024-05-01 10:20:00
        return f"{value[:10]}T{value[11:]}+00:00"
    if size == 20 and value[19] == "Z" and value[10] == "T":  # v2: 2024-05-01T10:20:00Z
        return f"{value[:19]}+00:00"
    if size == 25 and value.endswith("+00:00") and value[10] == "T":
        return value
    if not value.strip():
        return None
    try:
        return format_datetime(parse_datetime(value))
    except ValueError:
        return value  # Not a timestamp after all: keep what Pipedrive sent rather than drop it.


def to_query_timestamp(value: dt.datetime) -> str:
    """RFC 3339 with `Z`, whole seconds, rounded down so a `>=` filter never skips a record."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
