"""JSON lines in and out: the interface between pipe stages.

The writer serialises with orjson and flushes after each line so a downstream stage sees it at
once. The reader numbers lines and applies an error policy: a malformed line becomes one
message on stderr naming the line and the reason, then is skipped, or stops the stage with an
`InputError` under `strict`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import IO, Any

import orjson

from mmkit.errors import InputError


class LineWriter:
    def __init__(self, out: IO[bytes] | None = None):
        self._out = out if out is not None else sys.stdout.buffer

    def write(self, obj: dict[str, Any]) -> None:
        self._out.write(orjson.dumps(obj, default=str) + b"\n")
        self._out.flush()

    def write_raw(self, line: bytes) -> None:
        """Forward an upstream line unchanged (no re-encoding)."""
        self._out.write(line if line.endswith(b"\n") else line + b"\n")
        self._out.flush()


def read_lines(
    source: IO[bytes] | Iterable[bytes],
    *,
    name: str = "stdin",
    strict: bool = False,
    required: tuple[str, ...] = ("type",),
    on_error=None,
) -> Iterator[tuple[int, bytes, dict[str, Any]]]:
    """Yield (line number, raw line, parsed object) for every well-formed JSON object line.

    A line that is not a JSON object, or lacks a `required` field, is reported through
    `on_error(InputError)` (default: one line on stderr) and skipped, or raised when strict.
    Blank lines are ignored.
    """
    report = on_error or _report
    for number, raw in enumerate(source, start=1):
        if not raw.strip():
            continue
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            error = InputError(f"not valid JSON ({exc.msg})", where=f"{name}:{number}")
        else:
            missing = [key for key in required if not isinstance(obj, dict) or key not in obj]
            if not isinstance(obj, dict):
                error = InputError("expected a JSON object", where=f"{name}:{number}")
            elif missing:
                error = InputError("missing", where=f"{name}:{number}", field=missing[0])
            else:
                yield number, raw, obj
                continue
        if strict:
            raise error
        report(error)


def _report(error: InputError) -> None:
    print(f"mmkit: skipped {error}", file=sys.stderr, flush=True)


class Sequence:
    """Per (type, symbol), the time of the last line seen: a line older than it is out of
    order (a merged or replayed stream gone wrong) and is reported, not acted on; so is one
    whose `ts` is not an integer."""

    def __init__(self, kinds: tuple[str, ...]):
        self.kinds = kinds
        self._last: dict[tuple[str, str], int] = {}

    def out_of_order(self, line: dict[str, Any]) -> str | None:
        kind = line.get("type")
        if kind not in self.kinds:
            return None
        key, ts = (kind, line.get("symbol") or ""), line.get("ts")
        if "ts" not in line:
            return "missing field 'ts'"
        if not isinstance(ts, int) or isinstance(ts, bool):
            return f"field 'ts': must be an integer (ms), got {orjson.dumps(ts).decode()}"
        last = self._last.get(key)
        if last is not None and ts < last:
            return f"out of order: {kind} ts {ts} is before the previous {last}"
        self._last[key] = ts
        return None


def describe(exc: Exception) -> str:
    """Why a parsed line could not be used, in a few words (for `skip_line`)."""
    if isinstance(exc, InputError):
        return f"field {exc.field!r}: {exc.reason}" if exc.field else exc.reason
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}" if exc.args else "missing field"
    return f"bad value ({exc})"


def skip_line(stage: str, number: int, reason: str, *, strict: bool) -> None:
    """The policy for a well-formed JSON line a stage cannot use (out of order, a bad field):
    one line on stderr and the stage goes on, or, under `strict`, an `InputError` that stops
    it with exit code 2 (the same as an invalid JSON line)."""
    if strict:
        raise InputError(reason, where=f"stdin:{number}")
    print(f"mmkit {stage}: skipped line {number}: {reason}", file=sys.stderr, flush=True)
