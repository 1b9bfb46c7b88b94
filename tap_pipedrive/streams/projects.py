"""Projects and their tasks (API v2): no update-time filter, read whole."""

from __future__ import annotations

import typing as t

from tap_pipedrive.client import PipedriveV2Stream


class ProjectsStream(PipedriveV2Stream):
    """Projects that are not archived, deleted ones included and flagged; `/api/v2/projects`."""

    name = "projects"
    path = "/projects"
    custom_field_entity = "project"
    deleted_if = (("status", "deleted"), ("is_deleted", True))
    extra_params: t.ClassVar[dict[str, t.Any]] = {"status": "open,completed,canceled,deleted"}


class ArchivedProjectsStream(ProjectsStream):
    """Archived projects, which `/projects` leaves out; `/api/v2/projects/archived`."""

    name = "archived_projects"
    path = "/projects/archived"


class TasksStream(PipedriveV2Stream):
    """Project tasks; `/api/v2/tasks`."""

    name = "tasks"
    path = "/tasks"
