"""Local stand-in for the Pipedrive API used by the tests, the demo and the benchmark.

Standard library only at runtime. See ``server.Sandbox`` for the Python API and
``python -m tap_pipedrive.sandbox --help`` for the command line.
"""

from __future__ import annotations

from .server import LISTED_WITH_DELETED, Faults, Sandbox

__all__ = ["LISTED_WITH_DELETED", "Faults", "Sandbox"]
