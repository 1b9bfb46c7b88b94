"""Errors a user can act on: each carries one line that names the cause.

The CLI entry point (`tap_pipedrive.tap.main`) prints such an error as a single line on
stderr and exits non-zero, instead of a traceback.
"""

from __future__ import annotations

import signal

from singer_sdk.exceptions import FatalAPIError


class PipedriveError(FatalAPIError):
    """A fatal, user-actionable error. ``str(error)`` is the one line shown to the user."""

    exit_code = 1


class ConfigError(PipedriveError):
    """A setting is missing or wrong."""

    exit_code = 2


class AuthError(PipedriveError):
    """Pipedrive rejected the API token."""


class AccessError(PipedriveError):
    """Pipedrive refused access (402, 403, or its HTML block page)."""


class RateLimitError(PipedriveError):
    """Rate limited for longer than is worth waiting (e.g. the daily token budget is spent)."""


class ApiError(PipedriveError):
    """Pipedrive answered with an error that retrying will not fix."""


class UnavailableError(ApiError):
    """Pipedrive refused the endpoint itself (403 with its JSON envelope, 404, 410): the
    account's plan or the token's user has no access to it, or the API has no such path.
    A list refused at its first page skips its stream, not the run (`skip_unavailable`)."""


class NotFoundError(UnavailableError):
    """Pipedrive answered 404: the endpoint, or the record a path names, does not exist."""


class ConnectionFailed(PipedriveError):
    """The host could not be reached even after retries."""


class Stopped(PipedriveError):
    """A signal stopped the run: SIGTERM (cron's `timeout`, Meltano cancelling a job) or
    SIGINT (Ctrl-C). It exits as a shell reports a process ended by that signal
    (128 + its number), never 0: the run did not finish."""

    def __init__(self, signum: int) -> None:
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        super().__init__(f"stopped by {name}; the last STATE written lets the next run resume")
        self.exit_code = 128 + signum


class RunHalted(Exception):
    """Raised instead of sending a request after another request of the run failed for
    good; the tap then reports that first failure, `cause` (`TapPipedrive.halted`)."""

    def __init__(self, cause: BaseException | None = None) -> None:
        super().__init__(str(cause) if cause is not None else "")
        self.cause = cause
