"""Deals, persons, organizations, products (API v2) and leads (API v1)."""

from __future__ import annotations

import typing as t

from tap_pipedrive.client import PipedriveV1Stream, PipedriveV2Stream, UpdatedSinceMixin
from tap_pipedrive.streams.deal_children import (
    DEAL_IDS_PER_REQUEST,
    DealFlowStream,
    DealParticipantsStream,
    DealProductsStream,
)

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

V2_SORT = {"sort_by": "update_time", "sort_direction": "asc"}
DEAL_INCLUDE_FIELDS = (
    "next_activity_id", "last_activity_id", "first_won_time", "products_count",
    "files_count", "notes_count", "followers_count", "email_messages_count",
    "activities_count", "done_activities_count", "undone_activities_count",
    "participants_count", "last_incoming_mail_time", "last_outgoing_mail_time",
    "smart_bcc_email", "source_lead_id",
)  # fmt: skip


class DealsStream(UpdatedSinceMixin, PipedriveV2Stream):
    """Deals that are not archived, deleted ones included (Pipedrive keeps them 30 days);
    `/api/v2/deals`. Parent of the deal children, which it feeds with the deals it emits."""

    name = "deals"
    path = "/deals"
    custom_field_entity = "deal"
    deleted_if = (("status", "deleted"), ("is_deleted", True))
    extra_params: t.ClassVar[dict[str, t.Any]] = {
        **V2_SORT,
        "status": "open,won,lost,deleted",
    }
    include_fields = DEAL_INCLUDE_FIELDS

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self._product_batch: list[int] = []

    def get_child_context(self, record: dict, context: Context | None) -> dict[str, t.Any]:
        return {
            "deal_id": record["id"],
            "deleted": bool(record.get("_sdc_deleted_at")),
            "participants_count": record.get("participants_count"),
        }

    def _sync_children(self, child_context: Context | None) -> None:
        """Route each changed deal: products are batched 100 deals a request; participants
        only for deals that have some; no child requests for deleted deals."""
        if not child_context or child_context["deleted"]:
            return
        for child in self.child_streams:
            if not (child.selected or child.has_selected_descendents):
                continue
            if isinstance(child, DealProductsStream):
                self._product_batch.append(child_context["deal_id"])
                if len(self._product_batch) >= DEAL_IDS_PER_REQUEST:
                    self._flush_products()
            elif isinstance(child, DealParticipantsStream) and child_context[
                "participants_count"
            ] in (0, "0"):
                continue
            else:
                child.sync(context={"deal_id": child_context["deal_id"]})

    def _flush_products(self) -> None:
        batch, self._product_batch = self._product_batch, []
        if not batch:
            return
        for child in self.child_streams:
            if isinstance(child, DealProductsStream) and child.selected:
                child.sync(context={"deal_ids": batch})

    def get_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        yield from super().get_records(context)
        self._flush_products()

    def _write_state_message(self) -> None:
        """A bookmark must not pass a deal whose products are still unread."""
        self._flush_products()
        super()._write_state_message()

    def has_pending_work(self) -> bool:
        return bool(self._product_batch)


class ArchivedDealsStream(UpdatedSinceMixin, PipedriveV2Stream):
    """Archived deals, which Pipedrive leaves out of `/deals` since 2025-07-15;
    `/api/v2/deals/archived`."""

    name = "archived_deals"
    path = "/deals/archived"
    custom_field_entity = "deal"
    deleted_if = (("status", "deleted"), ("is_deleted", True))
    extra_params: t.ClassVar[dict[str, t.Any]] = {
        **V2_SORT,
        "status": "open,won,lost,deleted",
    }
    include_fields = DEAL_INCLUDE_FIELDS


class PersonsStream(UpdatedSinceMixin, PipedriveV2Stream):
    """Persons; `/api/v2/persons`."""

    name = "persons"
    path = "/persons"
    custom_field_entity = "person"
    recents_item = "person"
    extra_params: t.ClassVar[dict[str, t.Any]] = V2_SORT
    include_fields = (
        "next_activity_id", "last_activity_id", "open_deals_count",
        "related_open_deals_count", "closed_deals_count", "related_closed_deals_count",
        "participant_open_deals_count", "participant_closed_deals_count",
        "email_messages_count", "activities_count", "done_activities_count",
        "undone_activities_count", "files_count", "notes_count", "followers_count",
        "won_deals_count", "related_won_deals_count", "lost_deals_count",
        "related_lost_deals_count", "last_incoming_mail_time", "last_outgoing_mail_time",
        "marketing_status", "doi_status", "smart_bcc_email",
    )  # fmt: skip


class OrganizationsStream(UpdatedSinceMixin, PipedriveV2Stream):
    """Organizations; `/api/v2/organizations`."""

    name = "organizations"
    path = "/organizations"
    custom_field_entity = "organization"
    recents_item = "organization"
    extra_params: t.ClassVar[dict[str, t.Any]] = V2_SORT
    include_fields = (
        "next_activity_id", "last_activity_id", "open_deals_count",
        "related_open_deals_count", "closed_deals_count", "related_closed_deals_count",
        "email_messages_count", "people_count", "activities_count",
        "done_activities_count", "undone_activities_count", "files_count",
        "notes_count", "followers_count", "won_deals_count", "related_won_deals_count",
        "lost_deals_count", "related_lost_deals_count", "smart_bcc_email",
    )  # fmt: skip


class ProductsStream(UpdatedSinceMixin, PipedriveV2Stream):
    """Products; `/api/v2/products` (filters by `updated_since` only)."""

    name = "products"
    path = "/products"
    custom_field_entity = "product"
    recents_item = "product"
    extra_params: t.ClassVar[dict[str, t.Any]] = V2_SORT


class LeadsStream(UpdatedSinceMixin, PipedriveV1Stream):
    """Leads that are not archived; `/v1/leads`. Ids are UUID strings."""

    name = "leads"
    path = "/leads"
    custom_field_entity = "deal"
    extra_params: t.ClassVar[dict[str, t.Any]] = {"sort": "update_time ASC"}


class ArchivedLeadsStream(PipedriveV1Stream):
    """Archived leads, left out of `/leads`; `/v1/leads/archived`. The endpoint has no
    update-time filter: it is sorted by update time and filtered here."""

    name = "archived_leads"
    path = "/leads/archived"
    replication_key = "update_time"
    custom_field_entity = "deal"
    newest_first = True
    filter_here = True
    extra_params: t.ClassVar[dict[str, t.Any]] = {"sort": "update_time DESC"}


class LeadLabelsStream(PipedriveV1Stream):
    """Lead labels; `/v1/leadLabels` (no paging)."""

    name = "lead_labels"
    path = "/leadLabels"
    paginated = False


for _child in (DealProductsStream, DealParticipantsStream, DealFlowStream):
    _child.parent_stream_type = DealsStream
