"""One read of `/v1/recents` per run, shared by every stream that needs it.

Pipedrive lists there, for the last month at most, every change to activities, activity
types, deals, files, filters, notes, persons, organizations, pipelines, products, stages and
users, deletions included. The tap reads it once, for all item types at once, and keeps
only what the streams ask of it:

- the deletions of the entities whose lists leave deleted records out (persons, ...);
- whether an item type changed at all since a stream's last complete sync: if not, the
  stream is skipped, so an incremental run over an unchanged account does not re-read
  those tables (Pipedrive reports them unchanged).
"""

from __future__ import annotations

import datetime as dt
import typing as t
from dataclasses import dataclass, field

from tap_pipedrive.timeutil import UTC, parse_datetime

#: Every item type `/v1/recents` lists (the spec's enum of `items`).
LISTED_ITEMS = frozenset(
    {"activity", "activityType", "deal", "file", "filter", "note", "person", "organization",
     "pipeline", "product", "stage", "user"}
)  # fmt: skip

#: How far back `/v1/recents` reaches (a month), less a margin for clock differences.
REACH = dt.timedelta(days=30) - dt.timedelta(minutes=5)
#: A stream's last sync counts from this long before it started: Pipedrive's clock and
#: ours may differ, and a record can be updated while a page is on its way.
CLOCK_MARGIN = dt.timedelta(minutes=10)


def reach_floor(now: dt.datetime | None = None) -> dt.datetime:
    """The oldest time `/v1/recents` still answers for."""
    return (now or dt.datetime.now(UTC)) - REACH


@dataclass
class RecentChanges:
    """What `/v1/recents` listed from `since` on, for the item types in `items`."""

    since: dt.datetime
    items: frozenset[str]
    #: Per item type, the newest update time listed (absent: nothing listed).
    newest: dict[str, dt.datetime] = field(default_factory=dict)
    #: Per item type, `(id, deleted at)` of the deleted records listed.
    deletions: dict[str, list[tuple[t.Any, str | None]]] = field(default_factory=dict)
    #: False if the listing may have passed a change over (it moved while it was read):
    #: then it cannot tell that an item type is unchanged.
    complete: bool = True
    _deletions_listed: set[tuple[t.Any, ...]] = field(default_factory=set, repr=False)

    def add(self, entry: dict[str, t.Any]) -> None:
        """Take one listed change in; keep only what the streams ask of it."""
        item = entry.get("item")
        if item not in self.items:
            return
        data = entry.get("data") or {}
        try:
            updated = parse_datetime(data["update_time"])
        except (KeyError, TypeError, ValueError):
            updated = dt.datetime.now(UTC)  # no time given: count it as a change now
        if item not in self.newest or updated > self.newest[item]:
            self.newest[item] = updated
        if data.get("active_flag") is False or data.get("deleted") is True:
            deletion = (item, entry.get("id"), data.get("update_time"))
            if deletion not in self._deletions_listed:  # not again from a listing read again
                self._deletions_listed.add(deletion)
                self.deletions.setdefault(item, []).append(deletion[1:])

    def unchanged_since(self, item: str, when: dt.datetime) -> bool:
        """Whether Pipedrive reports no change of `item` from `when` on (False if it
        cannot tell: `when` before the listing's start, or `item` not listed)."""
        if not self.complete or item not in self.items or when < self.since:
            return False
        newest = self.newest.get(item)
        return newest is None or newest < when

    def deleted(self, item: str) -> list[tuple[t.Any, str | None]]:
        return self.deletions.get(item, [])
