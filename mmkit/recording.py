"""Market-data recordings: mmkit's own JSON-lines format (written by `mmkit depth --record`) and
the hftbacktest collector's `<local_ts> <json>` files, read as one stream of raw messages.

Both formats hold what a live client received, with receive times: combined-stream messages
(`{"stream", "data"}`) and REST depth snapshots. `mmkit depth --replay`, the simulator's
`--market replay` and the backtester read them through `read_messages`, so all three see the
same data. The format is described in mmkit/sim/market.py's docstring and docs/streams.md.

A corrupt or truncated file raises `InputError` naming file:line and the reason, after every
message before it has been yielded, so a consumer replays what came before.
"""

from __future__ import annotations

import gzip
import os
import time
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import orjson

from mmkit.errors import InputError

PathLike = str | os.PathLike
Paths = PathLike | Sequence[PathLike]
# (receive time ms, message: {"stream","data"} or a REST depth body, file name, line number)
RawMessage = tuple[int, Any, str, int]
FORMAT_VERSION = 1


def as_paths(paths: Paths) -> list[Path]:
    if isinstance(paths, str | os.PathLike):
        return [Path(paths)]
    return [Path(p) for p in paths]


def is_mmkit_recording(path: PathLike) -> bool:
    return os.fspath(path).endswith((".jsonl", ".jsonl.gz"))


def read_messages(paths: Paths) -> Iterator[RawMessage]:
    """Every message of `paths` in order, each file read by the reader its name asks for."""
    for path in as_paths(paths):
        reader = recording_messages if is_mmkit_recording(path) else hftbacktest_messages
        yield from reader(path)


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """Numbered lines; a truncated or corrupt gzip stream, or an unreadable file, becomes an
    InputError at the line where reading stopped."""
    number = 0
    try:
        with gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb") as fh:
            for number, line in enumerate(fh, 1):  # noqa: B007 (used after the loop)
                yield number, line
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise InputError(f"truncated or corrupt gzip data ({exc})", f"{path}:{number + 1}") from None
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror or exc})", f"{path}") from None


def _local_ts_to_ms(value: int) -> int:
    """A recorder timestamp → ms, its unit told by magnitude (2024 files: ns, 2023: µs)."""
    if value >= 10**17:
        return value // 1_000_000
    if value >= 10**14:
        return value // 1_000
    if value >= 10**11:
        return value
    return value * 1000


def hftbacktest_messages(paths: Paths) -> Iterator[RawMessage]:
    for path in as_paths(paths):
        for number, line in _lines(path):
            if not line.strip():
                continue
            local_ts, _, body = line.partition(b" ")
            try:
                yield _local_ts_to_ms(int(local_ts)), orjson.loads(body), path.name, number
            except (ValueError, orjson.JSONDecodeError) as exc:
                raise InputError(f"not `<local_ts> <json>`: {exc}", f"{path}:{number}") from None


def recording_messages(paths: Paths) -> Iterator[RawMessage]:
    for path in as_paths(paths):
        for number, line in _lines(path):
            text = line.strip()
            if not text or text.startswith(b"#"):
                continue
            where = f"{path}:{number}"
            try:
                obj = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                raise InputError(f"not JSON: {exc}", where) from None
            if not isinstance(obj, dict) or not isinstance(obj.get("recv"), int):
                raise InputError("expected an object with an integer `recv`", where, "recv")
            if "snapshot" in obj:
                yield obj["recv"], obj["snapshot"], path.name, number
            elif "data" in obj:
                yield obj["recv"], obj, path.name, number
            else:
                raise InputError("expected `stream`+`data` or `snapshot`", where)


def check_writable(path: PathLike) -> None:
    """Raise InputError (exit 2) naming `path` and the reason when a recording cannot be
    written there: checked before connecting, so a typo does not cost a session."""
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        reason = "is a directory"
    elif not parent.is_dir():
        reason = "no such directory" if not parent.exists() else f"{parent} is not a directory"
    elif not os.access(target if target.exists() else parent, os.W_OK):
        reason = "permission denied"
    else:
        return
    raise InputError(f"cannot write the recording: {reason}", str(path))


class Recorder:
    """Writes a recording: one JSON object per line, gzip when the name ends in `.gz`.

    Lines are flushed to the OS at most every `flush_s` seconds (gzip: a sync flush, so a
    crash loses at most that much and the file stays readable up to the last flush)."""

    def __init__(self, path: PathLike, *, flush_s: float = 1.0, note: str = ""):
        self.path = Path(path)
        self.flush_s = flush_s
        self.messages = 0
        self._last_flush = time.monotonic()
        try:
            raw = open(self.path, "wb")  # noqa: SIM115 (closed in close())
        except OSError as exc:
            raise InputError(f"cannot write the recording: {exc.strerror or exc}",
                             str(self.path)) from None
        self._gz = gzip.GzipFile(fileobj=raw, mode="wb") if self.path.name.endswith(".gz") else None
        self._raw = raw
        self._out: IO[bytes] = self._gz or raw
        header = f"# mmkit recording v{FORMAT_VERSION}" + (f" {note}" if note else "")
        self._out.write(header.encode() + b"\n")

    def message(self, recv_ms: int, stream: str, data: Any) -> None:
        self._write({"recv": recv_ms, "stream": stream, "data": data})

    def snapshot(self, recv_ms: int, body: dict[str, Any]) -> None:
        self._write({"recv": recv_ms, "snapshot": body})
        self.flush()  # a snapshot starts a replayable stretch: never lose one

    def _write(self, obj: dict[str, Any]) -> None:
        self._out.write(orjson.dumps(obj) + b"\n")
        self.messages += 1
        if time.monotonic() - self._last_flush >= self.flush_s:
            self.flush()

    def flush(self) -> None:
        if self._gz is not None:
            self._gz.flush(zlib.Z_SYNC_FLUSH)
        self._raw.flush()
        self._last_flush = time.monotonic()

    def close(self) -> None:
        if self._gz is not None:
            self._gz.close()
        self._raw.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
