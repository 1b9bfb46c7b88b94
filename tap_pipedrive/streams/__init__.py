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
]

__all__ = ["STREAM_TYPES"]
