"""Deals, persons, organizations, products (API v2) and leads (API v1)."""

from __future__ import annotations

import copy
import datetime as dt
import typing as t
from collections import deque
from dataclasses import dataclass, field
from functools import cached_property

from tap_pipedrive.client import (
    PipedriveV1Stream,
    PipedriveV2Stream,
    UpdatedSinceMixin,
    state_time,
)
from tap_pipedrive.streams.deal_children import (
    DEAL_IDS_PER_REQUEST,
    DealFlowStream,
    DealParticipantsStream,
    DealProductsStream,
)
from tap_pipedrive.timeutil import parse_datetime

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


class _DealParent:
    """A list of deals that feeds the deal children (products, participants, flow) with
    the deals it emits: `deals`, their declared parent, and `archived_deals`, whose
    deals have products too (they were never read: 83 products of 60 archived deals
    against an independent fake). Both lists are read alike: deleted deals included,
    custom fields of deals, counts of their children."""

    changes_item = "deal"
    custom_field_entity = "deal"
    deleted_if = (("status", "deleted"), ("is_deleted", True))
    updated_until_param = "updated_until"
    extra_params: t.ClassVar[dict[str, t.Any]] = {
        **V2_SORT,
        "status": "open,won,lost,deleted",
    }
    include_fields = DEAL_INCLUDE_FIELDS

    @cached_property
    def deal_children(self) -> list[t.Any]:
        """The deal child streams of the run, whichever deal list feeds them (asked for
        every deal: found once)."""
        return [
            stream
            for stream in self._tap.streams.values()  # type: ignore[attr-defined]
            if isinstance(stream, (DealProductsStream, DealParticipantsStream, DealFlowStream))
        ]

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self._product_batch = _ProductBatch()
        #: Batches whose products are requested but not yet written, oldest first.
        self._batches_in_flight: deque[_ProductBatch] = deque()

    #: The update time of the last deal read, for `walked_to`.
    _walked_to: str | None = None

    def get_starting_timestamp(self, context: Context | None) -> dt.datetime | None:
        """A list read only for its children (deals deselected, deal products selected)
        gets no bookmark from the SDK, which moves none for a deselected stream: every run
        read every deal and its products again. It starts where its last complete walk
        ended (`walked_to`), which never stands for its own bookmark: selected later, the
        list is read from that bookmark or `start_date`, and every deal is sent."""
        start = super().get_starting_timestamp(context)  # type: ignore[misc]
        if self.selected:  # type: ignore[attr-defined]
            return start
        walked = state_time(self.stream_state.get("walked_to"))  # type: ignore[attr-defined]
        if walked is None:
            return start
        return walked if start is None or walked > start else start

    def get_child_context(self, record: dict, context: Context | None) -> dict[str, t.Any]:
        if record.get("update_time"):
            self._walked_to = record["update_time"]
        return {
            "deal_id": record["id"],
            "update_time": record.get("update_time"),
            "deleted": bool(record.get("_sdc_deleted_at")),
            "products_count": record.get("products_count"),
            "participants_count": record.get("participants_count"),
        }

    def _sync_children(self, child_context: Context | None) -> None:
        """Route each changed deal: products are batched 100 deals a request, for deals
        that have products; participants only for deals that have some; no child requests
        for deleted deals."""
        if not child_context or child_context["deleted"]:
            return
        try:
            self._route_to_children(child_context)
        except BaseException:
            # The deal itself is written after its children: a stop among them (the
            # token cap) leaves it unwritten, and the records counted sent must say so.
            if self.selected:  # type: ignore[attr-defined]
                self._tap.meter.uncount_record(self.name)  # type: ignore[attr-defined]
            raise

    def _route_to_children(self, child_context: Context) -> None:
        for child in self.deal_children:
            if not (child.selected or child.has_selected_descendents):
                continue
            if isinstance(child, DealProductsStream):
                if child_context["products_count"] not in (0, "0"):
                    self._add_to_product_batch(child, child_context)
            elif isinstance(child, DealParticipantsStream) and child_context[
                "participants_count"
            ] in (0, "0"):
                continue
            else:
                self.sync_child(child, {"deal_id": child_context["deal_id"]})

    def _add_to_product_batch(self, child: DealProductsStream, deal: Context) -> None:
        """Request a batch as soon as it is full; write the oldest batch's products as
        soon as they are here, or once more batches are in flight than the round trip
        needs."""
        batch = self._product_batch
        if not batch.deal_ids:
            batch.first_update_time = deal["update_time"]
        batch.deal_ids.append(deal["deal_id"])
        if len(batch.deal_ids) >= DEAL_IDS_PER_REQUEST or self.dry_run:
            self._send_product_batch(child)
        while self._batches_in_flight and (
            len(self._batches_in_flight) > self.in_flight_wanted() - 1
            or child.answered(self._batches_in_flight[0].context)
            or self.dry_run
        ):
            self._write_oldest_batch(child)

    def _send_product_batch(self, child: DealProductsStream) -> None:
        """Request the batch being filled; it counts as pending throughout, also if the
        request is refused (the token cap) before it is sent."""
        batch = self._product_batch
        if batch.deal_ids:
            batch.context = child.prefetch(batch.deal_ids)
            self._batches_in_flight.append(batch)
        self._product_batch = _ProductBatch()

    def _write_oldest_batch(self, child: DealProductsStream) -> None:
        """Write the oldest batch's products; it stays pending until they are all
        written, so that a run stopped while they are read (the token cap, the daily
        budget spent) holds its deals bookmark back before that batch's deals."""
        self.sync_child(child, self._batches_in_flight[0].context)
        self._batches_in_flight.popleft()

    def _flush_products(self) -> None:
        """Write the products of every deal emitted so far."""
        for child in self.deal_children:
            if isinstance(child, DealProductsStream) and child.selected:
                self._send_product_batch(child)
                while self._batches_in_flight:
                    self._write_oldest_batch(child)

    def get_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        self._walked_to = None
        yield from super().get_records(context)  # type: ignore[misc]
        self._flush_products()
        refused = any(
            self._tap.is_unavailable(child)  # type: ignore[attr-defined]
            for child in self.deal_children
            if child.selected
        )
        if not self.selected and self._walked_to and not refused:  # type: ignore[attr-defined]
            # The walk is complete and every product of it written: the next starts here.
            # Not past a child Pipedrive refused this run: the walk was for it alone.
            self.stream_state["walked_to"] = self._walked_to  # type: ignore[attr-defined]
            self.state_manager.is_flushed = False  # type: ignore[attr-defined]

    @property
    def has_selected_descendents(self) -> bool:
        """Whether a deal child is selected: the SDK walks a deselected stream only for
        children it declares, which `archived_deals` does not (they are `deals`'), so the
        products of archived deals were never read with `archived_deals` deselected."""
        return any(child.selected or child.has_selected_descendents for child in self.deal_children)

    def _write_state_message(self) -> None:
        """A bookmark must not pass a deal whose products are still unwritten: while
        batches are pending, the STATE holds it back (`hold_back`)."""
        if not self._pending_batches() or self.state_manager.is_flushed:
            super()._write_state_message()
            return
        state = copy.deepcopy(self.tap_state)
        self.hold_back(state)
        self._tap.state_writer.write_state(state)
        self.state_manager.is_flushed = True

    def _pending_batches(self) -> list[_ProductBatch]:
        """The batches whose products are not all written yet, oldest first."""
        return [b for b in (*self._batches_in_flight, self._product_batch) if b.deal_ids]

    def hold_back(self, state: dict[str, t.Any]) -> None:
        """Back to the update time of the oldest deal among the pending batches: a
        resumed run reads from there again (`updated_since` is `>=`). Nor is the sync
        complete: without `synced_at`, the resumed run cannot skip deals as unchanged
        (the list may have ended, and its time been marked, before the last products)."""
        pending = self._pending_batches()
        if not pending:
            return
        entry = state.get("bookmarks", {}).get(self.name, {})
        entry.pop("synced_at", None)
        held_back = pending[0].first_update_time
        value = entry.get("replication_key_value")
        if held_back and value and parse_datetime(held_back) < parse_datetime(value):
            entry["replication_key_value"] = held_back


class DealsStream(_DealParent, UpdatedSinceMixin, PipedriveV2Stream):
    """Deals that are not archived, deleted ones included (Pipedrive keeps them 30 days);
    `/api/v2/deals`. Parent of the deal children, which it feeds with the deals it emits."""

    name = "deals"
    path = "/deals"


@dataclass
class _ProductBatch:
    """Up to 100 deal ids whose products are read in one request."""

    deal_ids: list[int] = field(default_factory=list)
    first_update_time: str | None = None
    #: The batch's context for `deal_products`, once its request is sent.
    context: dict[str, t.Any] = field(default_factory=dict)


class ArchivedDealsStream(_DealParent, UpdatedSinceMixin, PipedriveV2Stream):
    """Archived deals, which Pipedrive leaves out of `/deals` since 2025-07-15;
    `/api/v2/deals/archived`. Their products, participants and flow are read as those
    of `deals`."""

    name = "archived_deals"
    path = "/deals/archived"


class PersonsStream(UpdatedSinceMixin, PipedriveV2Stream):
    """Persons; `/api/v2/persons`."""

    name = "persons"
    path = "/persons"
    changes_item = "person"
    custom_field_entity = "person"
    recents_item = "person"
    updated_until_param = "updated_until"
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
    changes_item = "organization"
    custom_field_entity = "organization"
    recents_item = "organization"
    updated_until_param = "updated_until"
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
    changes_item = "product"
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
