"""Field definitions (`/v1/{entity}Fields`; projects: `/api/v2/projectFields`): every
standard and custom field of an entity.

These are streams of their own, and the tap also reads them to type and name custom fields.
"""

from __future__ import annotations

import typing as t

from tap_pipedrive.client import PipedriveV1Stream, PipedriveV2Stream

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context


class _Definitions:
    """Definitions are small; read whole on every run, once: the tap reads them anyway to
    type custom fields, and the stream serves the same rows."""

    entity: t.ClassVar[str]

    def get_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        failure = self._tap.definitions_failure(self.entity)  # type: ignore[attr-defined]
        if failure is not None:
            self._tap.skip_unavailable(self, failure)  # type: ignore[attr-defined]
            return
        yield from self._tap.field_definitions(self.entity)  # type: ignore[attr-defined]
        self._read_whole()  # type: ignore[attr-defined]


class _FieldsStream(_Definitions, PipedriveV1Stream):
    """`/v1/{entity}Fields`."""


class DealFieldsStream(_FieldsStream):
    """Deal fields; leads use them too. `/v1/dealFields`."""

    name = "deal_fields"
    entity = "deal"
    path = "/dealFields"


class PersonFieldsStream(_FieldsStream):
    name = "person_fields"
    entity = "person"
    path = "/personFields"


class OrganizationFieldsStream(_FieldsStream):
    name = "organization_fields"
    entity = "organization"
    path = "/organizationFields"


class ProductFieldsStream(_FieldsStream):
    name = "product_fields"
    entity = "product"
    path = "/productFields"


class ActivityFieldsStream(_FieldsStream):
    """`/v1/activityFields` does not page."""

    name = "activity_fields"
    entity = "activity"
    path = "/activityFields"
    paginated = False


class NoteFieldsStream(_FieldsStream):
    """`/v1/noteFields` does not page."""

    name = "note_fields"
    entity = "note"
    path = "/noteFields"
    paginated = False


class ProjectFieldsStream(_Definitions, PipedriveV2Stream):
    """Project fields; `/api/v2/projectFields` (v1 has none). Rows in v2's shape
    (`field_code`, `field_name`, `is_custom_field`), keyed by `field_code`."""

    name = "project_fields"
    entity = "project"
    path = "/projectFields"
    primary_keys: t.ClassVar[list[str]] = ["field_code"]


#: Where each entity's field definitions come from (leads use the deal fields).
FIELDS_STREAM_OF = {
    "deal": DealFieldsStream,
    "person": PersonFieldsStream,
    "organization": OrganizationFieldsStream,
    "product": ProductFieldsStream,
    "activity": ActivityFieldsStream,
    "note": NoteFieldsStream,
    "project": ProjectFieldsStream,
}
