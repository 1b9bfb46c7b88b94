"""Projects and their tasks (API v2): no update-time filter, read whole."""

from __future__ import annotations

import typing as t

from tap_pipedrive.client import PipedriveV2Stream

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context


class ProjectsStream(PipedriveV2Stream):
    """Projects, deleted ones included and flagged; `/api/v2/projects`."""

    name = "projects"
    path = "/projects"
    deleted_if = (("status", "deleted"), ("is_deleted", True))
    extra_params: t.ClassVar[dict[str, t.Any]] = {"status": "open,completed,canceled,deleted"}


class TasksStream(PipedriveV2Stream):
    """Project tasks; `/api/v2/tasks`. Read as two lists side by side, tasks done and not
    done: the endpoint has no time filter to split it by, and its cursor alone reads a
    page per round trip (at 1,000,000 records, 37 pages at the end of a run)."""

    name = "tasks"
    path = "/tasks"
    partitions: t.ClassVar[list[dict[str, str]]] = [{"is_done": "false"}, {"is_done": "true"}]
    state_partitioning_keys: t.ClassVar[list[str]] = []

    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict[str, t.Any]:
        params = super().get_url_params(context, next_page_token)
        if context:
            params["is_done"] = context["is_done"]
        return params
