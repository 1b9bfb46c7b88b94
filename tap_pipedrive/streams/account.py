"""Account-wide reference tables of API v1: users, activity types, currencies, filters.

None of these endpoints pages or filters by update time; they are small and read whole.
"""

from __future__ import annotations

from tap_pipedrive.client import PipedriveV1Stream


class _UnpagedV1Stream(PipedriveV1Stream):
    paginated = False


class UsersStream(_UnpagedV1Stream):
    """Users; `/v1/users`. Incremental on `modified`, filtered here since the API cannot."""

    name = "users"
    path = "/users"
    replication_key = "modified"
    filter_here = True


class ActivityTypesStream(_UnpagedV1Stream):
    """Activity types; `/v1/activityTypes`."""

    name = "activity_types"
    path = "/activityTypes"


class CurrenciesStream(_UnpagedV1Stream):
    """Currencies; `/v1/currencies`."""

    name = "currencies"
    path = "/currencies"


class FiltersStream(_UnpagedV1Stream):
    """Saved filters; `/v1/filters`."""

    name = "filters"
    path = "/filters"
