"""Account-wide reference tables of API v1: users, roles, goals, currencies, ...

None of these endpoints pages or filters by update time; they are small and read whole.
"""

from __future__ import annotations

import typing as t

from tap_pipedrive.client import PipedriveV1Stream, payload_of

if t.TYPE_CHECKING:
    import requests


class _UnpagedV1Stream(PipedriveV1Stream):
    paginated = False


class UsersStream(_UnpagedV1Stream):
    """Users; `/v1/users`, whole, as the other reference tables: the owners of records
    synced from `start_date` are users last modified long before it (skipped when
    `/v1/recents` reports no user changed)."""

    name = "users"
    path = "/users"
    changes_item = "user"


class ActivityTypesStream(_UnpagedV1Stream):
    """Activity types; `/v1/activityTypes`."""

    name = "activity_types"
    path = "/activityTypes"
    changes_item = "activityType"


class CurrenciesStream(_UnpagedV1Stream):
    """Currencies; `/v1/currencies`."""

    name = "currencies"
    path = "/currencies"


class FiltersStream(_UnpagedV1Stream):
    """Saved filters; `/v1/filters`."""

    name = "filters"
    path = "/filters"
    changes_item = "filter"


class RolesStream(PipedriveV1Stream):
    """Roles; `/v1/roles`."""

    name = "roles"
    path = "/roles"


class PermissionSetsStream(_UnpagedV1Stream):
    """Permission sets; `/v1/permissionSets`."""

    name = "permission_sets"
    path = "/permissionSets"


class GoalsStream(_UnpagedV1Stream):
    """Goals of everyone, active or not; `/v1/goals/find`. Without a parameter the spec
    marks "everyone's goals will be returned" Pipedrive returns only the token user's
    goals, and `is_active` defaults to true: one request per tracking metric (every
    goal's outcome counts a quantity or a sum: the fewest values of those parameters)
    and activity, 4 in all."""

    name = "goals"
    path = "/goals/find"
    partitions: t.ClassVar[list[dict[str, str]]] = [
        {"tracking_metric": metric, "is_active": active}
        for metric in ("quantity", "sum")
        for active in ("true", "false")
    ]
    state_partitioning_keys: t.ClassVar[list[str]] = []
    context_params: t.ClassVar[dict[str, str]] = {
        "expected_outcome.tracking_metric": "tracking_metric",
        "is_active": "is_active",
    }

    def parse_response(self, response: requests.Response) -> t.Iterable[dict[str, t.Any]]:
        """Goals sit under `data.goals`."""
        data = payload_of(response).get("data") or {}
        return iter(data.get("goals") or [] if isinstance(data, dict) else data)
