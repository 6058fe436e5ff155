"""Gzip-compressed input, read as it is decompressed: an EventBridge archive or a Firehose delivery saved as
`events.jsonl.gz`, or piped in (`cat events.jsonl.gz | batchops ingest -`), is ingested like the plain file.

Compressed input is recognised by its first two bytes, not by a file name. Data that ends early or is corrupt raises
`UnreadableInput`, with what went wrong, at the point where reading fails: what was read before it is still usable.
"""

from __future__ import annotations

import gzip
import zlib
from typing import IO, Any, cast

GZIP_MAGIC = b"\x1f\x8b"
_BROKEN = (EOFError, zlib.error, gzip.BadGzipFile)


class UnreadableInput(OSError):
    """The input cannot be read on from here (compressed data that ends early or is corrupt)."""


class _GzipReader(gzip.GzipFile):
    """A gzip stream whose reading errors are `UnreadableInput` (line iteration goes through `readline`)."""

    def read(self, size: int | None = -1) -> bytes:
        try:
            return super().read(size)
        except _BROKEN as error:
            raise UnreadableInput(f"the gzip data ends early or is corrupt: {error}") from error

    def readline(self, size: int | None = -1) -> bytes:
        try:
            return super().readline(size)
        except _BROKEN as error:
            raise UnreadableInput(f"the gzip data ends early or is corrupt: {error}") from error


def is_compressed(stream: IO[bytes]) -> bool:
    """True when the stream starts with gzip's magic bytes (looked at without consuming them)."""
    peek: Any = getattr(stream, "peek", None)
    if peek is not None:
        return bool(peek(2)[:2] == GZIP_MAGIC)
    if stream.seekable():
        position = stream.tell()
        head = stream.read(2)
        stream.seek(position)
        return head == GZIP_MAGIC
    return False


def decompressed(stream: IO[bytes]) -> IO[bytes]:
    """The stream's decompressed bytes (the stream itself when it is not compressed)."""
    if is_compressed(stream):
        return cast(IO[bytes], _GzipReader(fileobj=stream, mode="rb"))
    return stream


def open_events_file(path: str, compressed: bool) -> IO[bytes]:
    """Open a file of events for reading, decompressing it as it is read when it is compressed."""
    if compressed:
        return cast(IO[bytes], _GzipReader(path, mode="rb"))
    return open(path, "rb")
