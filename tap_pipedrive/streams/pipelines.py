"""Pipelines and stages (API v2): small tables with no update-time filter, read whole."""

from __future__ import annotations

import typing as t

from tap_pipedrive.client import PipedriveV2Stream


class PipelinesStream(PipedriveV2Stream):
    """Pipelines; `/api/v2/pipelines`."""

    name = "pipelines"
    path = "/pipelines"
    changes_item = "pipeline"
    extra_params: t.ClassVar[dict[str, t.Any]] = {"sort_by": "id", "sort_direction": "asc"}


class StagesStream(PipedriveV2Stream):
    """Stages of every pipeline; `/api/v2/stages`."""

    name = "stages"
    path = "/stages"
    changes_item = "stage"
    extra_params: t.ClassVar[dict[str, t.Any]] = {"sort_by": "id", "sort_direction": "asc"}
