"""tap-pipedrive: a Singer tap for Pipedrive CRM, built with the Meltano Singer SDK."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tap-pipedrive")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
