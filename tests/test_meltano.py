"""End to end through Meltano: `meltano run tap-pipedrive target-jsonl` against the sandbox.

Runs in a temporary copy of the project's `meltano.yml`, so the test neither reads nor
changes the state and output of `make demo`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest

from tap_pipedrive.sandbox import LISTED_WITH_DELETED as WITH_DELETED
from tap_pipedrive.sandbox import Sandbox
from tap_pipedrive.streams import STREAM_TYPES, replication_keys
from tests.helpers import record_key, reported_unchanged

ROOT = Path(__file__).resolve().parents[1]
MELTANO = Path(sys.executable).with_name("meltano")
START_DATE = "2022-01-01T00:00:00Z"
#: What `meltano run` extracts with no catalog: the streams selected by default.
STREAMS = {
    name: key
    for name, key in replication_keys().items()
    if next(c for c in STREAM_TYPES if c.name == name).selected_by_default
}
CHILDREN = {"deal_products"}

pytestmark = pytest.mark.skipif(not MELTANO.exists(), reason="meltano is not installed")


def meltano(project: Path, *args: str, env: dict[str, str]) -> None:
    done = subprocess.run(
        [str(MELTANO), *args], cwd=project, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]


def read_output(output: Path) -> dict[str, list[dict[str, t.Any]]]:
    return {
        path.stem: [json.loads(line) for line in path.read_text().splitlines()]
        for path in output.glob("*.jsonl")
    }


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("meltano-project")
    manifest = (ROOT / "meltano.yml").read_text()
    assert "pip_url: -e .\n" in manifest
    (project / "meltano.yml").write_text(
        manifest.replace("pip_url: -e .\n", f"pip_url: -e {ROOT}\n")
    )
    meltano(project, "install", env=dict(os.environ))
    yield project
    shutil.rmtree(project / ".meltano", ignore_errors=True)


def test_meltano_run_lands_the_ground_truth_then_only_changes(project: Path) -> None:
    with Sandbox(seed=21, scale=0.05) as sandbox:
        output = project / "output"
        env = {
            **os.environ,
            "TAP_PIPEDRIVE_API_URL": sandbox.url,
            "TAP_PIPEDRIVE_API_KEY": sandbox.token,
            "TAP_PIPEDRIVE_START_DATE": START_DATE,
            "TARGET_JSONL_DESTINATION_PATH": str(output),
        }
        meltano(project, "run", "tap-pipedrive", "target-jsonl", env=env)
        first = read_output(output)
        for name in STREAMS:
            got = {record_key(name, record) for record in first.get(name, [])}
            assert got == sandbox.truth(name, START_DATE, with_deleted=name in WITH_DELETED), name

        # Only changes to records the endpoint lists count (a touched deal may be archived).
        changed = {
            name: set(sandbox.touch(name, n=3)) & sandbox.truth(name, START_DATE)
            for name in ("deals", "notes", "leads")
        }
        assert all(changed.values()), changed
        meltano(project, "run", "tap-pipedrive", "target-jsonl", env=env)
        second = read_output(output)
        skipped = reported_unchanged(changed)  # Pipedrive reports them unchanged
        for name, key in STREAMS.items():
            appended = second.get(name, [])[len(first.get(name, [])) :]
            ids = {record_key(name, record) for record in appended}
            if name in CHILDREN:
                continue
            if not key:
                expected = sandbox.truth(name, START_DATE, with_deleted=name in WITH_DELETED)
                assert ids == (set() if name in skipped else expected), name
                continue
            latest = max((r[key] for r in first.get(name, []) if r.get(key)), default=None)
            boundary = {r["id"] for r in first.get(name, []) if r.get(key) == latest}
            assert changed.get(name, set()) <= ids, f"{name}: a change was missed"
            assert ids <= changed.get(name, set()) | boundary, f"{name}: old records re-sent"
    assert sandbox.token not in json.dumps(second)


def test_meltano_selects_what_the_tap_selects_by_default() -> None:
    """`meltano.yml` selects `*.*` and then leaves out streams by name: exactly those the
    tap leaves off by default, so `meltano run` costs what a plain run costs."""
    manifest = (ROOT / "meltano.yml").read_text()
    left_out = set(re.findall(r"^\s*- '!(\w+)\.\*'$", manifest, flags=re.MULTILINE))
    assert left_out == {c.name for c in STREAM_TYPES if not c.selected_by_default}
