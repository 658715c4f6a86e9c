"""Every failure runwatchd can raise, as the few kinds a caller acts on.

    RunwatchdError
    ├── ConfigError             bad configuration; lists every problem with its key path (exit 78)
    ├── InvalidFile             a local check failed: too small/large, unsupported type, not a
    │                           regular file, unreadable. Skip the file; never retry until it changes.
    ├── FileChanged             the file changed while it was read; settle again, then retry
    ├── DiskFull                not enough free space for a download; fetch it later
    ├── StoreUnavailable        the store's database cannot be reached or dropped the connection;
    │                           nothing was written by the failed call: try again later
    └── RunwayError             anything the Runway API (or the way to it) answered
        ├── KeyRejected         401: the API key was rejected. Stop all work.
        ├── NoCredits           400 "not enough credits": pause generation, uploads go on
        ├── InputRejected       other 4xx: the request itself is wrong. Skip, never retry.
        │   └── DownloadRefused an output URL that can never succeed: not http(s), a redirect
        │                       loop or to plain http, over the size cap
        ├── SubmitUncertain     a generation POST failed after it was sent: a task may exist and
        │                       be billed. Never resubmit blindly; mark the file "needs attention".
        └── RetryableError      worth another try, after `retry_after` seconds when the server said
            ├── RateLimited     429 (also "daily task limit")
            ├── ServerError     408, 5xx
            ├── SlotExpired     403 from the presigned upload URL: ask for a fresh slot
            └── NetworkError    connection refused/reset, timeouts, a reply that is not JSON

httpx errors are wrapped where they enter our code (`raise ... from e`); nothing else escapes the
client. The message of every error is one line meant for a person, and never contains the secret.
"""

from __future__ import annotations


class RunwatchdError(Exception):
    """Base of every error runwatchd raises on purpose."""


class ConfigError(RunwatchdError):
    """The configuration is invalid; `problems` lists each one with its key path."""

    def __init__(self, problems: list[str], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(where + "; ".join(self.problems))


class StoreDamaged(RunwatchdError):
    """The store cannot be read as one (a corrupt journal): exit 78, never a silent reset."""


class InvalidFile(RunwatchdError):
    """A local check failed before any network call; the file is skipped until it changes."""


class FileChanged(RunwatchdError):
    """The file changed (size, mtime or inode) while it was being uploaded."""


class DiskFull(RunwatchdError):
    """Not enough free space (or no write access) where an output is to be downloaded."""


class StoreUnavailable(RunwatchdError):
    """The store's database server cannot be reached, or the connection dropped mid-call (the
    call's transaction was rolled back). The message names the store without its password."""


class RunwayError(RunwatchdError):
    """An error answered by the Runway API or met on the way to it."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class KeyRejected(RunwayError):
    """401: the API key was rejected; every request would fail the same way."""


class NoCredits(RunwayError):
    """The account has no credits left for generation."""


class InputRejected(RunwayError):
    """The API refused the request as invalid (400/404/405/422): retrying cannot help."""


class DownloadRefused(InputRejected):
    """An output URL that can never be downloaded as given (scheme, redirects, size)."""


class SubmitUncertain(RunwayError):
    """A generation POST failed after it was sent; a task may have been created and billed."""


class RetryableError(RunwayError):
    """A failure worth another try; `retry_after` is the server's wish in seconds, if it gave one;
    `should_retry` False: the server said not to (`x-should-retry: false`, as the runwayml SDK
    honours it)."""

    def __init__(
        self, message: str, status: int | None = None, retry_after: float | None = None,
        *, should_retry: bool = True,
    ) -> None:
        super().__init__(message, status)
        self.retry_after = retry_after
        self.should_retry = should_retry


class RateLimited(RetryableError):
    """429 Too Many Requests (or the daily task limit)."""


class ServerError(RetryableError):
    """408 or 5xx from the API or the storage."""


class SlotExpired(RetryableError):
    """403 from the presigned URL: the upload slot expired; request a new one."""


class NetworkError(RetryableError):
    """Connection refused or dropped, a timeout, or a reply that could not be read."""
