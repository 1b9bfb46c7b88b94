"""Deals, persons, organizations, products (API v2) and leads (API v1)."""

from __future__ import annotations

import typing as t

from tap_pipedrive.client import PipedriveV1Stream, PipedriveV2Stream, UpdatedSinceMixin

V2_SORT = {"sort_by": "update_time", "sort_direction": "asc"}


class DealsStream(UpdatedSinceMixin, PipedriveV2Stream):
    """Deals that are not archived; `/api/v2/deals`."""

    name = "deals"
    path = "/deals"
    custom_field_entity = "deal"
    extra_params: t.ClassVar[dict[str, t.Any]] = {
        **V2_SORT,
        "include_fields": ",".join(
            (
                "next_activity_id", "last_activity_id", "first_won_time", "products_count",
                "files_count", "notes_count", "followers_count", "email_messages_count",
                "activities_count", "done_activities_count", "undone_activities_count",
                "participants_count", "last_incoming_mail_time", "last_outgoing_mail_time",
                "smart_bcc_email", "source_lead_id",
            )
        ),
    }  # fmt: skip


class PersonsStream(UpdatedSinceMixin, PipedriveV2Stream):
    """Persons; `/api/v2/persons`."""

    name = "persons"
    path = "/persons"
    custom_field_entity = "person"
    extra_params: t.ClassVar[dict[str, t.Any]] = {
        **V2_SORT,
        "include_fields": ",".join(
            (
                "next_activity_id", "last_activity_id", "open_deals_count",
                "related_open_deals_count", "closed_deals_count", "related_closed_deals_count",
                "participant_open_deals_count", "participant_closed_deals_count",
                "email_messages_count", "activities_count", "done_activities_count",
                "undone_activities_count", "files_count", "notes_count", "followers_count",
                "won_deals_count", "related_won_deals_count", "lost_deals_count",
                "related_lost_deals_count", "last_incoming_mail_time", "last_outgoing_mail_time",
                "marketing_status", "doi_status", "smart_bcc_email",
            )
        ),
    }  # fmt: skip


class OrganizationsStream(UpdatedSinceMixin, PipedriveV2Stream):
    """Organizations; `/api/v2/organizations`."""

    name = "organizations"
    path = "/organizations"
    custom_field_entity = "organization"
    extra_params: t.ClassVar[dict[str, t.Any]] = {
        **V2_SORT,
        "include_fields": ",".join(
            (
                "next_activity_id", "last_activity_id", "open_deals_count",
                "related_open_deals_count", "closed_deals_count", "related_closed_deals_count",
                "email_messages_count", "people_count", "activities_count",
                "done_activities_count", "undone_activities_count", "files_count",
                "notes_count", "followers_count", "won_deals_count", "related_won_deals_count",
                "lost_deals_count", "related_lost_deals_count", "smart_bcc_email",
            )
        ),
    }  # fmt: skip


class ProductsStream(UpdatedSinceMixin, PipedriveV2Stream):
    """Products; `/api/v2/products` (filters by `updated_since` only)."""

    name = "products"
    path = "/products"
    custom_field_entity = "product"
    extra_params: t.ClassVar[dict[str, t.Any]] = V2_SORT


class LeadsStream(UpdatedSinceMixin, PipedriveV1Stream):
    """Leads that are not archived; `/v1/leads`. Ids are UUID strings."""

    name = "leads"
    path = "/leads"
    custom_field_entity = "deal"
    extra_params: t.ClassVar[dict[str, t.Any]] = {"sort": "update_time ASC"}
