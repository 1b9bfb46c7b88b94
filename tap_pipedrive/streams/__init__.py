"""Pipedrive streams, grouped by domain. Each is a few declarative lines on the base
streams of `tap_pipedrive.client`."""

from __future__ import annotations

from tap_pipedrive.client import declared_replication_key
from tap_pipedrive.streams.account import (
    ActivityTypesStream,
    CurrenciesStream,
    FiltersStream,
    GoalsStream,
    PermissionSetsStream,
    RolesStream,
    UsersStream,
)
from tap_pipedrive.streams.activities import (
    ActivitiesStream,
    CallLogsStream,
    FilesStream,
    NotesStream,
)
from tap_pipedrive.streams.crm import (
    ArchivedDealsStream,
    ArchivedLeadsStream,
    DealsStream,
    LeadLabelsStream,
    LeadsStream,
    OrganizationsStream,
    PersonsStream,
    ProductsStream,
)
from tap_pipedrive.streams.deal_children import (
    DealFlowStream,
    DealParticipantsStream,
    DealProductsStream,
)
from tap_pipedrive.streams.fields import (
    ActivityFieldsStream,
    DealFieldsStream,
    NoteFieldsStream,
    OrganizationFieldsStream,
    PersonFieldsStream,
    ProductFieldsStream,
    ProjectFieldsStream,
)
from tap_pipedrive.streams.mail import MailMessagesStream, MailThreadsStream
from tap_pipedrive.streams.pipelines import PipelinesStream, StagesStream
from tap_pipedrive.streams.projects import (
    ArchivedProjectsStream,
    ProjectBoardsStream,
    ProjectPhasesStream,
    ProjectsStream,
    ProjectTemplatesStream,
    TasksStream,
)

STREAM_TYPES = [
    # Core CRM, incremental by update time.
    DealsStream,
    PersonsStream,
    OrganizationsStream,
    ActivitiesStream,
    ProductsStream,
    NotesStream,
    LeadsStream,
    FilesStream,
    ArchivedDealsStream,
    ArchivedLeadsStream,
    # Deal children, read for the deals the deals stream emits.
    DealProductsStream,
    DealParticipantsStream,
    DealFlowStream,
    # Reference tables, read whole.
    PipelinesStream,
    StagesStream,
    UsersStream,
    ActivityTypesStream,
    CurrenciesStream,
    FiltersStream,
    LeadLabelsStream,
    RolesStream,
    PermissionSetsStream,
    GoalsStream,
    CallLogsStream,
    ProjectsStream,
    ArchivedProjectsStream,
    TasksStream,
    ProjectBoardsStream,
    ProjectPhasesStream,
    ProjectTemplatesStream,
    # Field definitions.
    DealFieldsStream,
    PersonFieldsStream,
    OrganizationFieldsStream,
    ProductFieldsStream,
    ActivityFieldsStream,
    NoteFieldsStream,
    ProjectFieldsStream,
    # Mailbox, off unless selected.
    MailThreadsStream,
    MailMessagesStream,
]


def replication_keys() -> dict[str, str | None]:
    """Each stream's replication key, read off the classes (no tap, no requests needed)."""
    return {cls.name: declared_replication_key(cls) for cls in STREAM_TYPES}


__all__ = ["STREAM_TYPES", "replication_keys"]
