"""Field definitions (`/v1/{entity}Fields`): every standard and custom field of an entity.

These are streams of their own, and the tap also reads them to type and name custom fields.
"""

from __future__ import annotations

from tap_pipedrive.client import PipedriveV1Stream


class _FieldsStream(PipedriveV1Stream):
    """Definitions are small; read whole on every run."""


class DealFieldsStream(_FieldsStream):
    """Deal fields; leads use them too. `/v1/dealFields`."""

    name = "deal_fields"
    path = "/dealFields"


class PersonFieldsStream(_FieldsStream):
    name = "person_fields"
    path = "/personFields"


class OrganizationFieldsStream(_FieldsStream):
    name = "organization_fields"
    path = "/organizationFields"


class ProductFieldsStream(_FieldsStream):
    name = "product_fields"
    path = "/productFields"


class ActivityFieldsStream(_FieldsStream):
    """`/v1/activityFields` does not page."""

    name = "activity_fields"
    path = "/activityFields"
    paginated = False


class NoteFieldsStream(_FieldsStream):
    """`/v1/noteFields` does not page."""

    name = "note_fields"
    path = "/noteFields"
    paginated = False


#: Where each entity's field definitions come from (leads use the deal fields).
FIELDS_STREAM_OF = {
    "deal": DealFieldsStream,
    "person": PersonFieldsStream,
    "organization": OrganizationFieldsStream,
    "product": ProductFieldsStream,
    "activity": ActivityFieldsStream,
    "note": NoteFieldsStream,
}
