"""Bad input, as a new user would give it: one clear line naming the problem, a non-zero
exit, never a traceback, never the token."""

from __future__ import annotations

import json
import subprocess
import typing as t
from pathlib import Path

import pytest

from tests.helpers import TAP

TOKEN = "known-secret-token-5f2a9c"
GOOD = {"api_key": TOKEN, "start_date": "2024-05-01T00:00:00Z", "api_url": "http://127.0.0.1:9"}


def run_cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    done = subprocess.run(
        [*TAP, *args], capture_output=True, text=True, timeout=120, check=False, env=env
    )
    assert TOKEN not in done.stdout + done.stderr
    return done.returncode, done.stderr


def write(tmp_path: Path, name: str, content: t.Any) -> str:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def assert_one_line(returncode: int, stderr: str, *words: str) -> None:
    assert returncode != 0
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("tap-pipedrive: error:")]
    assert len(errors) == 1, stderr[-2000:]
    for word in words:
        assert word in errors[0], errors[0]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"api_key": None}, ["api_key", "missing"]),
        ({"api_key": "  "}, ["api_key", "missing or empty"]),
        ({"api_key": "known secret"}, ["api_key", "whitespace"]),
        ({"api_key": 12345}, ["api_key", "must be a string"]),
        ({"start_date": None}, ["start_date", "missing"]),
        ({"start_date": "yesterday"}, ["start_date", "'yesterday'", "ISO 8601"]),
        ({"start_date": "05/01/2024"}, ["start_date", "'05/01/2024'"]),
        ({"start_date": "2024-13-45"}, ["start_date", "'2024-13-45'"]),
        ({"start_date": "2999-01-01T00:00:00Z"}, ["start_date", "in the future"]),
        ({"company_domain": "acme corp"}, ["company_domain", "'acme corp'"]),
        ({"api_url": "ftp://files.example"}, ["api_url", "http(s)"]),
        ({"api_url": "api.pipedrive.com"}, ["api_url"]),
        ({"request_timeout": -3}, ["request_timeout"]),
        ({"request_timeout": 1e-9}, ["request_timeout", "from 1 to 86400"]),
        ({"max_tokens_per_run": 0}, ["max_tokens_per_run"]),
        ({"custom_field_names": "labels"}, ["custom_field_names"]),
    ],
)
@pytest.mark.parametrize("mode", [[], ["--discover"]], ids=["sync", "discover"])
def test_bad_setting(
    tmp_path: Path, change: dict[str, t.Any], words: list[str], mode: list[str]
) -> None:
    """In a sync and in discovery alike (Meltano discovers before every run, and the
    catalog depends on the account): before discovery checked nothing, and a bad
    setting surfaced, if at all, as a traceback from the first request."""
    config = {key: value for key, value in {**GOOD, **change}.items() if value is not None}
    config_file = write(tmp_path, "c.json", config)
    assert_one_line(*run_cli(tmp_path, "--config", config_file, *mode), *words)


def test_config_from_env_missing_start_date(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "TAP_PIPEDRIVE_API_KEY": TOKEN}
    assert_one_line(*run_cli(tmp_path, "--config", "ENV", env=env), "start_date")


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{api_key: 1}", ["config file", "not valid JSON", "line 1"]),
        ("[1, 2]", ["config file", "not a JSON object"]),
    ],
)
def test_config_file_not_json(tmp_path: Path, content: str, words: list[str]) -> None:
    assert_one_line(*run_cli(tmp_path, "--config", write(tmp_path, "c.json", content)), *words)


def test_missing_config_file(tmp_path: Path) -> None:
    returncode, stderr = run_cli(tmp_path, f"--config={tmp_path}/nope.json")
    assert_one_line(returncode, stderr, "nope.json", "does not exist")


@pytest.mark.parametrize(
    ("state", "words"),
    [
        ("not json", ["state file", "not valid JSON"]),
        ([], ["state file", "not a JSON object"]),
        ({"bookmarks": {"orders": {}, "invoices": {}}}, ["does not belong to tap-pipedrive"]),
        (
            {"bookmarks": {"deals": {"replication_key_value": "last tuesday"}}},
            ["bookmark for deals", "not a time"],
        ),
        (
            {"bookmarks": {"deals": {"replication_key": "add_time",
                                     "replication_key_value": "2024-06-01T00:00:00Z"}}},
            ["bookmark for deals on 'add_time'", "'update_time'"],
        ),
        (
            {"singer_state": {"bookmarks": {"deals": {"replication_key_value": "2099-01-01"}}}},
            ["bookmark for deals in the future", "2099-01-01"],
        ),
    ],
)  # fmt: skip
def test_bad_state_file(tmp_path: Path, state: t.Any, words: list[str]) -> None:
    config = write(tmp_path, "c.json", GOOD)
    state_file = write(tmp_path, "s.json", state)
    assert_one_line(*run_cli(tmp_path, "--config", config, "--state", state_file), *words)


@pytest.mark.parametrize(
    ("catalog", "words"),
    [
        ({"streams": [{"tap_stream_id": "invoices", "metadata": [
            {"breadcrumb": [], "metadata": {"selected": True}}]}]}, ["'invoices'", "--discover"]),
        ({"tables": []}, ["not a Singer catalog"]),
    ],
)  # fmt: skip
def test_bad_catalog_file(tmp_path: Path, catalog: dict[str, t.Any], words: list[str]) -> None:
    config = write(tmp_path, "c.json", GOOD)
    catalog_file = write(tmp_path, "cat.json", catalog)
    assert_one_line(*run_cli(tmp_path, "--config", config, "--catalog", catalog_file), *words)


@pytest.mark.parametrize(
    ("variable", "value"),
    [("MAX_CONCURRENT_REQUESTS", "abc"), ("MAX_TOKENS_PER_RUN", "1k"),
     ("REQUEST_TIMEOUT", "soon"), ("REQUEST_TIMEOUT", "nan"), ("REQUEST_TIMEOUT", "1e400"),
     ("CUSTOM_FIELD_LABELS", "nope"), ("CUSTOM_FIELD_LABELS", " true"),
     ("STREAM_MAPS", "{not json")],
)  # fmt: skip
def test_config_from_env_of_the_wrong_type(tmp_path: Path, variable: str, value: str) -> None:
    """The SDK raised a traceback for a number it could not read, and took any word but
    true/1/yes/on for false."""
    env = {"PATH": "/usr/bin:/bin", "TAP_PIPEDRIVE_API_KEY": TOKEN,
           "TAP_PIPEDRIVE_START_DATE": "2024-05-01",
           f"TAP_PIPEDRIVE_{variable}": value}  # fmt: skip
    returncode, stderr = run_cli(tmp_path, "--config", "ENV", "--discover", env=env)
    assert_one_line(returncode, stderr, f"TAP_PIPEDRIVE_{variable}")
    assert returncode == 2


def test_a_timeout_in_fractions_of_a_second_is_a_timeout(tmp_path: Path) -> None:
    """`request_timeout: 2.5` was refused as not "a positive number of seconds", and
    from a config file (the SDK reads its fractions as `Decimal`) after that."""
    import os

    from tap_pipedrive.tap import TapPipedrive
    from tests.conftest import SESSION_SANDBOX

    config = {**GOOD, "api_url": os.environ["TAP_PIPEDRIVE_TEST_API_URL"],
              "api_key": SESSION_SANDBOX.token, "request_timeout": 2.5}  # fmt: skip
    tap = TapPipedrive(config=config, validate_config=True)
    assert tap.streams["deals"].timeout == 2.5  # type: ignore[attr-defined]
    config_file = write(tmp_path, "c.json", config)
    returncode, stderr = run_cli(tmp_path, "--config", config_file, "--discover")
    assert returncode == 0, stderr[-2000:]


@pytest.mark.parametrize("expression", ["1 +", "undefined_fn(title)"])
def test_a_stream_map_expression_that_fails_is_one_line(tmp_path: Path, expression: str) -> None:
    """A `stream_maps` expression that does not parse, or fails on a record, ended in a
    traceback of 70 to 160 lines."""
    import os

    from tests.conftest import SESSION_SANDBOX

    config = {**GOOD, "api_url": os.environ["TAP_PIPEDRIVE_TEST_API_URL"],
              "api_key": SESSION_SANDBOX.token,
              "stream_maps": {"deals": {"renamed": expression}}}  # fmt: skip
    returncode, stderr = run_cli(tmp_path, "--config", write(tmp_path, "c.json", config))
    assert_one_line(returncode, stderr, "stream_maps", expression)
    assert returncode == 2


def test_the_sdks_settings_are_read_from_the_environment_too(tmp_path: Path) -> None:
    """`--config ENV` with `TAP_PIPEDRIVE_STREAM_MAPS` masking personal data: the map
    must apply (a check of the tap's own settings once left the SDK's out)."""
    import os

    from tests.conftest import SESSION_SANDBOX

    env = {"PATH": "/usr/bin:/bin", "TAP_PIPEDRIVE_API_KEY": SESSION_SANDBOX.token,
           "TAP_PIPEDRIVE_API_URL": os.environ["TAP_PIPEDRIVE_TEST_API_URL"],
           "TAP_PIPEDRIVE_START_DATE": "2024-05-01", "TAP_PIPEDRIVE_REQUEST_TIMEOUT": "30.5",
           "TAP_PIPEDRIVE_STREAM_MAPS": json.dumps({"persons": {"name": "'X'"}})}  # fmt: skip
    done = subprocess.run([*TAP, "--config", "ENV"], capture_output=True, text=True,
                          timeout=300, check=False, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    names = {json.loads(line)["record"]["name"] for line in done.stdout.splitlines()
             if '"stream":"persons"' in line and '"RECORD"' in line}  # fmt: skip
    assert names == {"X"}
