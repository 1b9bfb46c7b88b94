"""Deal children: products attached to deals, participants and the change log (flow).

They are read only for the deals the `deals` stream emits, i.e. deals changed since its
bookmark. Products come 100 deals a request (`/api/v2/deals/products?deal_ids=`): never one
request per deal. Participants and flow have no batch endpoint, so they cost one request
per changed deal (flow: 40 tokens each) and are off unless selected.
"""

from __future__ import annotations

import itertools
import re
import typing as t

from tap_pipedrive.client import PipedriveV1Stream, PipedriveV2Stream
from tap_pipedrive.timeutil import to_rfc3339

#: Pipedrive v1's timestamp: `2024-05-01 10:20:00` (UTC).
V1_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\Z")

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

    from tap_pipedrive.client import PrimedPages
    from tap_pipedrive.pipeline import PageChain

DEAL_IDS_PER_REQUEST = 100


class _DealChild:
    """Synced from the `deals` stream's records; no state partitions per deal or batch."""

    state_partitioning_keys: t.ClassVar[list[str]] = []
    #: Set on the class below (after DealsStream is importable) to avoid a cycle.
    parent_stream_type: t.ClassVar[type | None] = None

    def _write_state_message(self) -> None:
        """Only `deals` writes STATE: it knows which deals' children are written."""


class DealProductsStream(_DealChild, PipedriveV2Stream):
    """Products attached to changed deals, 100 deals a request."""

    name = "deal_products"
    path = "/deals/products"
    extra_params: t.ClassVar[dict[str, t.Any]] = {"sort_by": "id", "sort_direction": "asc"}

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self._batch_numbers = itertools.count(1)
        #: Per batch number, its deals' ids and the chain of its pages, until written.
        self._deal_ids: dict[int, list[int]] = {}
        self._prefetched: dict[int, PageChain] = {}

    def prefetch(self, deal_ids: list[int]) -> Context:
        """Request these deals' products now; `sync(context)` with the context returned
        writes them later. The context names the batch, not its hundred ids: it is in
        every log line about the batch (a 1,000,000-record run logged 2 MB of ids)."""
        number = next(self._batch_numbers)
        self._deal_ids[number] = deal_ids
        context = {"deal_batch": number, "deals": len(deal_ids)}
        self._prefetched[number] = self.new_chain(context, self.get_new_paginator()).start()
        return context

    def answered(self, context: Context) -> bool:
        """Whether the batch prefetched for `context` has its first page here."""
        chain = self._prefetched.get(context["deal_batch"])
        return chain is not None and chain.has_page()

    def first_chain(self, context: Context | None) -> PageChain | PrimedPages:
        chain = self._prefetched.pop((context or {}).get("deal_batch", 0), None)
        return chain or super().first_chain(context)

    def get_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        try:
            yield from super().get_records(context)
        finally:
            self._deal_ids.pop((context or {}).get("deal_batch", 0), None)

    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict[str, t.Any]:
        params = super().get_url_params(context, next_page_token)
        deal_ids = self._deal_ids[(context or {})["deal_batch"]]
        params["deal_ids"] = ",".join(str(deal_id) for deal_id in deal_ids)
        return params


class DealParticipantsStream(_DealChild, PipedriveV1Stream):
    """Persons participating in each changed deal; `/v1/deals/{deal_id}/participants`."""

    name = "deal_participants"
    path = "/deals/{deal_id}/participants"
    selected_by_default = False
    nested_custom_field_entities: t.ClassVar[dict[str, str]] = {"person": "person"}

    def post_process(
        self, row: dict[str, t.Any], context: Context | None = None
    ) -> dict[str, t.Any] | None:
        row["deal_id"] = (context or {}).get("deal_id")
        return super().post_process(row, context)


class DealFlowStream(_DealChild, PipedriveV1Stream):
    """The change log of each changed deal; `/v1/deals/{deal_id}/flow` (40 tokens a call)."""

    name = "deal_flow"
    path = "/deals/{deal_id}/flow"
    primary_keys: t.ClassVar[list[str]] = ["deal_id", "object", "item_id"]
    selected_by_default = False
    #: Custom field changes too (without it Pipedrive leaves them out).
    extra_params: t.ClassVar[dict[str, t.Any]] = {"all_changes": "1"}

    def post_process(
        self, row: dict[str, t.Any], context: Context | None = None
    ) -> dict[str, t.Any] | None:
        row["deal_id"] = (context or {}).get("deal_id")
        data = row.get("data")
        row["item_id"] = data.get("id") if isinstance(data, dict) else None
        if isinstance(data, dict):  # untyped (its shape varies with `object`): by name
            for key, value in data.items():
                if key.endswith("_time") and isinstance(value, str) and V1_TIMESTAMP.match(value):
                    data[key] = to_rfc3339(value)
        return super().post_process(row, context)
