"""Test-session setup: one read-only Pipedrive sandbox for the SDK's standard tests.

`get_tap_test_class` instantiates the tap while pytest collects `test_core.py`, so the
sandbox must be up before collection: hence `pytest_configure`, not a fixture. Tests that
change sandbox data start their own sandbox.
"""

from __future__ import annotations

import os

import pytest

from tap_pipedrive.sandbox import Sandbox

SESSION_SANDBOX = Sandbox(seed=3, scale=0.05)


def pytest_configure(config: pytest.Config) -> None:
    os.environ["TAP_PIPEDRIVE_TEST_API_URL"] = SESSION_SANDBOX.start()
    os.environ["TAP_PIPEDRIVE_TEST_API_KEY"] = SESSION_SANDBOX.token


def pytest_unconfigure(config: pytest.Config) -> None:
    SESSION_SANDBOX.stop()
