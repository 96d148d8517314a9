"""Typed errors and the exit codes the CLI maps them to.

Messages are one line and never carry secrets: a caller that formats a request into an error
must go through `mmkit.binance.signing.redact` first.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_REJECTED = 3
EXIT_NETWORK = 4
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells count it (128 + SIGINT)


class MmkitError(Exception):
    """Base of every error mmkit raises on purpose; `exit_code` is what the CLI exits with."""

    exit_code = EXIT_RUNTIME


class ConfigError(MmkitError):
    """A bad config key, value or flag. `path` names the key, e.g. symbols.ETHUSDC.risk.maxPosition."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, path: str | None = None):
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class InputError(MmkitError):
    """A malformed input line or file. `where` is file:line or `line N`, `field` the bad field."""

    exit_code = EXIT_USAGE

    def __init__(self, reason: str, where: str | None = None, field: str | None = None):
        self.reason, self.where, self.field = reason, where, field
        parts = [p for p in (where, f"field {field!r}" if field else None) if p]
        super().__init__(f"{', '.join(parts)}: {reason}" if parts else reason)


class VenueError(MmkitError):
    """The venue answered with a Binance error body `{"code": .., "msg": ..}`."""

    exit_code = EXIT_REJECTED
    INPUT_CODES = {-1121}  # "Invalid symbol.": the user's input, like any unknown symbol

    def __init__(self, code: int, msg: str, status: int = 400, path: str | None = None):
        self.code, self.msg, self.status, self.path = code, msg, status, path
        if code in self.INPUT_CODES:
            self.exit_code = EXIT_USAGE
        where = f" ({path})" if path else ""
        super().__init__(f"venue error {code}: {msg}{where}")


class RateLimited(VenueError):
    """HTTP 429 (back off) or 418 (IP banned): `retry_after` seconds when the venue said."""

    def __init__(self, code: int, msg: str, status: int, retry_after: float | None = None,
                 path: str | None = None):
        super().__init__(code, msg, status, path)
        self.retry_after = retry_after


class NetworkError(MmkitError):
    """The venue could not be reached, or did not answer in time."""

    exit_code = EXIT_NETWORK


class OutcomeUnknown(NetworkError):
    """An order request may or may not have reached the matching engine (timeout, 503 unknown,
    -1006, -1007). Settle it by querying `client_order_id`; never resend blindly."""

    def __init__(self, message: str, client_order_id: str | None = None):
        self.client_order_id = client_order_id
        suffix = f" (clientOrderId {client_order_id})" if client_order_id else ""
        super().__init__(f"{message}; order outcome unknown{suffix}")
