"""The SDK's standard tap and stream tests, against the session's sandbox (see conftest).

Every stream is selected, including those off by default (deal flow, participants, mail),
so the standard tests cover all of them.
"""

from __future__ import annotations

import os

from singer_sdk.testing import SuiteConfig, get_tap_test_class

from tap_pipedrive.tap import TapPipedrive

CONFIG = {
    "api_key": os.environ["TAP_PIPEDRIVE_TEST_API_KEY"],
    "api_url": os.environ["TAP_PIPEDRIVE_TEST_API_URL"],
    "start_date": "2019-01-01T00:00:00Z",
}


def catalog_selecting_everything() -> dict:
    catalog = TapPipedrive(config=CONFIG).catalog_dict
    for entry in catalog["streams"]:
        for meta in entry["metadata"]:
            meta["metadata"]["selected"] = True
    return catalog


TestTapPipedrive = get_tap_test_class(
    tap_class=TapPipedrive,
    config=CONFIG,
    catalog=catalog_selecting_everything(),
    suite_config=SuiteConfig(max_records_limit=400),
)
