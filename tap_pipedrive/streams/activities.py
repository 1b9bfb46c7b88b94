"""Activities (API v2) and notes (API v1)."""

from __future__ import annotations

import typing as t

from tap_pipedrive.client import PipedriveV1Stream, PipedriveV2Stream, UpdatedSinceMixin
from tap_pipedrive.streams.crm import V2_SORT


class ActivitiesStream(UpdatedSinceMixin, PipedriveV2Stream):
    """Activities of all users; `/api/v2/activities`."""

    name = "activities"
    path = "/activities"
    changes_item = "activity"
    custom_field_entity = "activity"
    recents_item = "activity"
    updated_until_param = "updated_until"
    extra_params: t.ClassVar[dict[str, t.Any]] = V2_SORT
    include_fields = ("attendees",)


class NotesStream(UpdatedSinceMixin, PipedriveV1Stream):
    """Notes; `/v1/notes`, sorted by update time."""

    name = "notes"
    path = "/notes"
    changes_item = "note"
    recents_item = "note"
    extra_params: t.ClassVar[dict[str, t.Any]] = {"sort": "update_time ASC"}


class FilesStream(PipedriveV1Stream):
    """Files; `/v1/files` (at most 100 a page). No update-time filter: read newest first
    down to the bookmark. Deleted files (`active_flag: false`) are flagged."""

    name = "files"
    path = "/files"
    changes_item = "file"
    page_size = 100
    replication_key = "update_time"
    newest_first = True
    filter_here = True
    deleted_if = (("active_flag", False),)
    recents_item = "file"
    extra_params: t.ClassVar[dict[str, t.Any]] = {"sort": "update_time DESC"}


class CallLogsStream(PipedriveV1Stream):
    """Call logs; `/v1/callLogs` (at most 50 a page). Pipedrive returns the call logs of
    the token's user only."""

    name = "call_logs"
    path = "/callLogs"
    page_size = 50
