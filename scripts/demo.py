"""`make demo`: the tap end to end, without a Pipedrive account.

Starts the bundled Pipedrive sandbox on a free local port, runs
`meltano run tap-pipedrive target-jsonl` against it and prints, per stream, how many records
landed and where. Run it again: Meltano resumes from its saved state, the demo first changes
a few records in the sandbox (as users would between two runs), and only those are synced.

The demo keeps to itself: its Meltano state has its own ID (`meltano run --state-id-suffix
demo`, so `dev:tap-pipedrive-to-target-jsonl:demo`) and target-jsonl writes to
`demo-output/`, so a `meltano run tap-pipedrive target-jsonl` against a real account neither
resumes from the demo's bookmarks nor appends to its files. `rm -rf demo-output` starts the
demo over: without that folder, the demo clears its saved state first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tap_pipedrive.sandbox import LISTED_WITH_DELETED, Sandbox
from tap_pipedrive.streams import STREAM_TYPES, replication_keys

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MELTANO = str(BIN / "meltano")
OUTPUT = ROOT / "demo-output"
LOG = OUTPUT / "demo-meltano.log"
#: Never the state ID of a plain `meltano run tap-pipedrive target-jsonl` (no suffix).
STATE_ID_SUFFIX = "demo"
STATE_ID = f"dev:tap-pipedrive-to-target-jsonl:{STATE_ID_SUFFIX}"
START_DATE = "2024-01-01T00:00:00Z"
SEED, SCALE = 7, 0.2
#: What "users" change in the sandbox between two demo runs.
CHANGES = {"deals": 5, "persons": 3, "organizations": 2, "activities": 4, "notes": 2, "leads": 2}


def meltano(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MELTANO, *args],
        cwd=ROOT,
        env=env or os.environ.copy(),
        capture_output=True,
        text=True,
        check=False,
    )


def line_counts() -> dict[str, int]:
    return {
        path.stem: sum(1 for _ in path.open(encoding="utf-8")) for path in OUTPUT.glob("*.jsonl")
    }


def saved_state() -> dict | None:
    result = meltano("state", "get", STATE_ID)
    if result.returncode != 0 or not result.stdout.strip():
        return None
    try:
        state = json.loads(result.stdout)
    except json.JSONDecodeError:
        return None
    # Meltano prints `{}` for a state ID it has never saved.
    return state if (state.get("singer_state") or {}).get("bookmarks") else None


def fail(step: str, result: subprocess.CompletedProcess[str]) -> None:
    print(f"\n{step} failed (exit {result.returncode}). Last lines:", file=sys.stderr)
    print("\n".join((result.stdout + result.stderr).splitlines()[-25:]), file=sys.stderr)
    sys.exit(1)


def main() -> None:
    print("Installing the Meltano plugins (tap-pipedrive, target-jsonl) ...")
    result = meltano("install")
    if result.returncode != 0:
        fail("meltano install", result)
    if not OUTPUT.exists() and saved_state() is not None:
        # Its output removed: start over, rather than send only changes into empty files.
        print(f"No {OUTPUT.name}/: clearing the demo's saved state ({STATE_ID}) to start over")
        result = meltano("state", "clear", "--force", STATE_ID)
        if result.returncode != 0:
            fail("meltano state clear", result)
    OUTPUT.mkdir(exist_ok=True)

    with Sandbox(seed=SEED, scale=SCALE) as sandbox:
        print(f"Pipedrive sandbox listening on {sandbox.url} (seed {SEED}, scale {SCALE})")
        resumed = saved_state() is not None
        changed: dict[str, int] = {}
        if resumed:
            print("Meltano has a saved state: simulating activity in Pipedrive since the last run:")
            for stream, count in CHANGES.items():
                changed[stream] = len(sandbox.touch(stream, n=count))
                print(f"  changed {changed[stream]} {stream}")

        before = line_counts()
        env = {
            **os.environ,
            "TAP_PIPEDRIVE_API_URL": sandbox.url,
            "TAP_PIPEDRIVE_API_KEY": sandbox.token,
            "TAP_PIPEDRIVE_START_DATE": START_DATE,
            "TARGET_JSONL_DESTINATION_PATH": str(OUTPUT),
        }
        print(
            f"Running: meltano run --state-id-suffix {STATE_ID_SUFFIX} tap-pipedrive "
            f"target-jsonl  (log: {LOG.relative_to(ROOT)})"
        )
        started = time.monotonic()
        result = meltano(
            "run", "--state-id-suffix", STATE_ID_SUFFIX, "tap-pipedrive", "target-jsonl", env=env
        )
        LOG.write_text(result.stdout + result.stderr, encoding="utf-8")
        if result.returncode != 0:
            fail("meltano run", result)
        elapsed = time.monotonic() - started
        after = line_counts()
        requests = sandbox.request_count()

        kind = "incremental run from Meltano's saved state" if resumed else "first run (backfill)"
        print(f"\nDone in {elapsed:.1f} s, {requests} API requests: {kind}\n")
        header = f"{'stream':<21}{'mode':<13}{'this run':>9}{'expected':>10}  file"
        print(header)
        print("-" * len(header))
        defaults = {c.name for c in STREAM_TYPES if c.selected_by_default}
        # Tables /v1/recents reports unchanged since their last sync are skipped.
        touched = {c.changes_item for c in STREAM_TYPES if c.name in changed} - {None}
        unchanged = {c.name for c in STREAM_TYPES if c.changes_item not in touched | {None}}
        for name, key in replication_keys().items():
            if name not in defaults:
                continue
            landed = after.get(name, 0) - before.get(name, 0)
            incremental = bool(key)
            if not resumed:
                with_deleted = name in LISTED_WITH_DELETED
                expected = str(len(sandbox.truth(name, START_DATE, with_deleted=with_deleted)))
            elif incremental:
                expected = f"{changed.get(name, 0)}+"
            elif name == "deal_products":
                expected = "of deals"
            else:
                expected = "0" if name in unchanged else "all"
            mode = "incremental" if incremental else "full table"
            if name == "deal_products":
                mode = "of deals"
            path = OUTPUT / f"{name}.jsonl"
            print(f"{name:<21}{mode:<13}{landed:>9}{expected:>10}  {path.relative_to(ROOT)}")
        print(
            "\n'expected' is the sandbox's ground truth. On a resumed run, incremental streams "
            "send the changed records,\nplus any record whose update time equals the bookmark "
            "(sent again rather than risk losing it).\nTables that Pipedrive's /v1/recents "
            "reports unchanged since their last sync are skipped (0).\nRun `make demo` again to "
            "see another incremental run; `rm -rf demo-output` starts over."
        )


if __name__ == "__main__":
    main()
