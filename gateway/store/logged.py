"""Access-log entries as the log holds them until they are indexed (ADR 0053).

An entry is an AuditEvent's JSON, some 2.2 KB for a read, nearly all of it the same codes,
systems and displays in every entry. The log holds it compressed with Zstandard against a
dictionary of that vocabulary (``data/log-dictionary-N.txt``, made by
``scripts/make_log_dictionary.py``): a read's entry takes about 210 bytes. Its first byte
is the dictionary's version; JSON starts with ``{``, so an entry written whole (before
this, or by a test) is read as it is. The indexer gets back the very bytes the gateway
wrote, and stores them as the AuditEvent (ADR 0049).

A released dictionary is never changed: the entries written with it are read with it. A
new one is a new version beside it.
"""

from __future__ import annotations

import threading
from importlib import resources
from typing import Any

import orjson
import zstandard

__all__ = ["VERSION", "pack", "unpack", "unpacked_size"]

#: the dictionary new entries are written with
VERSION = 1
#: Zstandard's level for entries: a read's entry of 2.2 KB in about 2 µs, to about 210 bytes
#: (level 1 takes twice that for 185)
_LEVEL = -1
#: an entry written whole: its JSON's first byte
_WHOLE = ord("{")


class _Codecs(threading.local):
    """A thread's compressor and decompressors: Zstandard's are not shared between threads
    (the gateway writes entries on its event loop and on pool threads, the indexer reads
    them on its own)."""

    def __init__(self) -> None:
        self.compressor: Any = None
        self.decompressors: dict[int, Any] = {}


_codecs = _Codecs()


def _dictionary(version: int) -> zstandard.ZstdCompressionDict:
    try:
        name = f"log-dictionary-{version}.txt"
        data = resources.files(__package__).joinpath("data", name).read_bytes()
    except FileNotFoundError:
        raise ValueError(f"an access-log entry of unknown version {version}") from None
    return zstandard.ZstdCompressionDict(data, dict_type=zstandard.DICT_TYPE_RAWCONTENT)


def pack(event: dict[str, Any]) -> bytes:
    """The bytes the log holds for the entry ``event``."""
    compressor = _codecs.compressor
    if compressor is None:
        compressor = _codecs.compressor = zstandard.ZstdCompressor(
            level=_LEVEL, dict_data=_dictionary(VERSION), write_checksum=False
        )
    packed: bytes = compressor.compress(orjson.dumps(event))
    return bytes((VERSION,)) + packed


def unpack(blob: bytes | memoryview) -> bytes:
    """The JSON of an entry the log holds as ``blob`` (:func:`pack`, or written whole)."""
    data = memoryview(blob)
    if not data or data[0] == _WHOLE:
        return bytes(data)
    version = data[0]
    decompressor = _codecs.decompressors.get(version)
    if decompressor is None:
        decompressor = zstandard.ZstdDecompressor(dict_data=_dictionary(version))
        _codecs.decompressors[version] = decompressor
    try:
        unpacked: bytes = decompressor.decompress(data[1:])
    except zstandard.ZstdError:
        raise ValueError("an access-log entry that does not decompress") from None
    return unpacked


def unpacked_size(blob: bytes | memoryview) -> int:
    """The size of an entry's JSON, read from the frame's header (no decompression): what
    the indexer sizes its batches by."""
    data = memoryview(blob)
    if not data or data[0] == _WHOLE:
        return len(data)
    try:
        size: int = zstandard.frame_content_size(data[1:])
    except zstandard.ZstdError:
        raise ValueError("an access-log entry that is not a frame") from None
    return size if size >= 0 else len(data)
