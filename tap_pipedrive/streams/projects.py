"""Projects, their tasks, boards, phases and templates (API v2): no update-time filter,
read whole."""

from __future__ import annotations

import typing as t

from tap_pipedrive.client import PipedriveV2Stream

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context


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


class ProjectBoardsStream(PipedriveV2Stream):
    """Project boards, what projects' `board_id` names; `/api/v2/boards` (one page).
    Off unless selected, as are phases and templates: the default run's cost stays that
    of the tables most accounts use."""

    name = "project_boards"
    path = "/boards"
    paginated = False
    selected_by_default = False

    def get_child_context(self, record: dict, context: Context | None) -> dict[str, t.Any]:
        return {"board_id": record["id"]}


class ProjectPhasesStream(PipedriveV2Stream):
    """Phases of each board, what projects' `phase_id` names; `/api/v2/phases?board_id=`
    (required): one request per board."""

    name = "project_phases"
    path = "/phases"
    parent_stream_type = ProjectBoardsStream
    paginated = False
    selected_by_default = False
    state_partitioning_keys: t.ClassVar[list[str]] = []
    context_params: t.ClassVar[dict[str, str]] = {"board_id": "board_id"}


class ProjectTemplatesStream(PipedriveV2Stream):
    """Project templates; `/api/v2/projectTemplates`."""

    name = "project_templates"
    path = "/projectTemplates"
    selected_by_default = False
