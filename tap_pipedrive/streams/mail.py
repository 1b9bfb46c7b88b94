"""Mailbox: threads of every folder and their messages. Off unless selected: messages cost
one request per thread."""

from __future__ import annotations

import typing as t

from tap_pipedrive.client import PipedriveV1Stream

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

FOLDERS = ("inbox", "drafts", "sent", "archive")


class MailThreadsStream(PipedriveV1Stream):
    """Mail threads of the token's user, one partition per folder."""

    name = "mail_threads"
    path = "/mailbox/mailThreads"
    selected_by_default = False
    partitions: t.ClassVar[list[dict[str, str]]] = [{"folder": folder} for folder in FOLDERS]
    state_partitioning_keys: t.ClassVar[list[str]] = []
    context_params: t.ClassVar[dict[str, str]] = {"folder": "folder"}

    def post_process(
        self, row: dict[str, t.Any], context: Context | None = None
    ) -> dict[str, t.Any] | None:
        """A thread can sit in two folders (inbox and sent): emit it, and read its
        messages, once."""
        seen = self.__dict__.setdefault("_threads_seen", set())
        if row["id"] in seen:
            return None
        seen.add(row["id"])
        return super().post_process(row, context)

    def get_child_context(self, record: dict, context: Context | None) -> dict[str, t.Any]:
        return {"thread_id": record["id"]}


class MailMessagesStream(PipedriveV1Stream):
    """Messages of each thread; `/v1/mailbox/mailThreads/{thread_id}/mailMessages`."""

    name = "mail_messages"
    path = "/mailbox/mailThreads/{thread_id}/mailMessages"
    parent_stream_type = MailThreadsStream
    paginated = False
    selected_by_default = False
    state_partitioning_keys: t.ClassVar[list[str]] = []
