"""Pipedrive streams, grouped by domain. Each is a few declarative lines on the base
streams of `tap_pipedrive.client`."""

from __future__ import annotations

from tap_pipedrive.streams.account import (
    ActivityTypesStream,
    CurrenciesStream,
    FiltersStream,
    UsersStream,
)
from tap_pipedrive.streams.activities import ActivitiesStream, NotesStream
from tap_pipedrive.streams.crm import (
    DealsStream,
    LeadsStream,
    OrganizationsStream,
    PersonsStream,
    ProductsStream,
)
from tap_pipedrive.streams.fields import (
    ActivityFieldsStream,
    DealFieldsStream,
    NoteFieldsStream,
    OrganizationFieldsStream,
    PersonFieldsStream,
    ProductFieldsStream,
)
from tap_pipedrive.streams.pipelines import PipelinesStream, StagesStream

STREAM_TYPES = [
    DealsStream,
    PersonsStream,
    OrganizationsStream,
    ActivitiesStream,
    ProductsStream,
    PipelinesStream,
    StagesStream,
    NotesStream,
    LeadsStream,
    UsersStream,
    ActivityTypesStream,
    CurrenciesStream,
    FiltersStream,
    DealFieldsStream,
    PersonFieldsStream,
    OrganizationFieldsStream,
    ProductFieldsStream,
    ActivityFieldsStream,
    NoteFieldsStream,
]


def replication_keys() -> dict[str, str | None]:
    """Each stream's replication key, read off the classes (no tap, no requests needed)."""
    keys = {}
    for stream_class in STREAM_TYPES:
        key = None
        for base in stream_class.__mro__:
            if "replication_key" in base.__dict__:
                key = base.__dict__["replication_key"]
                break
        keys[stream_class.name] = key if isinstance(key, str) else None
    return keys


__all__ = ["STREAM_TYPES", "replication_keys"]
