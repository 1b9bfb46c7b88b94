"""Activities (API v2) and notes (API v1)."""

from __future__ import annotations

import typing as t

from tap_pipedrive.client import PipedriveV1Stream, PipedriveV2Stream, UpdatedSinceMixin
from tap_pipedrive.streams.crm import V2_SORT


class ActivitiesStream(UpdatedSinceMixin, PipedriveV2Stream):
    """Activities of all users; `/api/v2/activities`."""

    name = "activities"
    path = "/activities"
    custom_field_entity = "activity"
    extra_params: t.ClassVar[dict[str, t.Any]] = {**V2_SORT, "include_fields": "attendees"}


class NotesStream(UpdatedSinceMixin, PipedriveV1Stream):
    """Notes; `/v1/notes`, sorted by update time."""

    name = "notes"
    path = "/notes"
    extra_params: t.ClassVar[dict[str, t.Any]] = {"sort": "update_time ASC"}
