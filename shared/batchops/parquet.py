"""A small Parquet writer and reader with no dependency beyond the standard library.

The exporter Lambda rewrites the Parquet files Athena reads (docs/athena-data-path.md); pyarrow alone would
take the artifact past Lambda's 50 MB, so this module writes exactly what the export needs:

- flat schemas of nullable columns typed `string` (BYTE_ARRAY, UTF8), `bigint` (INT64), `double` (DOUBLE)
  and `boolean` (BOOLEAN), the Athena names;
- PLAIN values, definition levels in the RLE/bit-packed hybrid (no repetition levels: nothing is nested);
- one data page (v1) per column and row group, compressed with GZIP (zlib) or not at all;
- the footer (FileMetaData) in Thrift's compact protocol, with optional key/value metadata.

The reader reads such files back (any number of row groups and pages, either codec, RLE or bit-packed
levels); it is not a general Parquet reader (no dictionary pages, no nesting, no other codecs).
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MAGIC = b"PAR1"
TYPES = ("string", "bigint", "double", "boolean")
"""The column types, by their Athena (Hive) names."""

# parquet.thrift enums
_BOOLEAN, _INT64, _DOUBLE, _BYTE_ARRAY = 0, 2, 5, 6
_PHYSICAL = {"string": _BYTE_ARRAY, "bigint": _INT64, "double": _DOUBLE, "boolean": _BOOLEAN}
_LOGICAL = {v: k for k, v in _PHYSICAL.items()}
_REQUIRED, _OPTIONAL = 0, 1
_UTF8 = 0
_PLAIN, _RLE = 0, 3
_DATA_PAGE = 0
UNCOMPRESSED, GZIP = 0, 2
_CODECS = {"uncompressed": UNCOMPRESSED, "gzip": GZIP}
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
CREATED_BY = "batchops parquet writer"

# Thrift compact protocol field types
_T_TRUE, _T_FALSE, _T_BYTE, _T_I16, _T_I32, _T_I64, _T_DOUBLE, _T_BINARY = 1, 2, 3, 4, 5, 6, 7, 8
_T_LIST, _T_SET, _T_MAP, _T_STRUCT = 9, 10, 11, 12


class ParquetError(ValueError):
    """A value does not fit its column, or a file is not one this module can read."""


@dataclass(frozen=True)
class Column:
    """A nullable column of the flat schema."""

    name: str
    type: str

    def __post_init__(self) -> None:
        if self.type not in _PHYSICAL:
            raise ParquetError(f"column {self.name!r}: type {self.type!r} is not one of {', '.join(TYPES)}")


def schema_of(columns: Iterable[tuple[str, str]] | str) -> tuple[Column, ...]:
    """Columns from (name, type) pairs or from Athena DDL text like `a string, b bigint`."""
    if isinstance(columns, str):
        pairs = [tuple(part.split()) for part in columns.split(",") if part.strip()]
        columns = [(p[0], p[1]) for p in pairs]
    found = tuple(Column(name, kind) for name, kind in columns)
    names = [c.name for c in found]
    if len(set(names)) != len(names):
        raise ParquetError(f"duplicate column names in {names}")
    return found


# ------------------------------------------------------------------------------------------ thrift compact


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _zigzag(value: int) -> int:
    return (value << 1) ^ (value >> 63)


class _Struct:
    """A Thrift struct being written: (field id, compact type, value) in increasing id order."""

    def __init__(self) -> None:
        self.fields: list[tuple[int, int, Any]] = []

    def i32(self, fid: int, value: int) -> _Struct:
        self.fields.append((fid, _T_I32, value))
        return self

    def i64(self, fid: int, value: int) -> _Struct:
        self.fields.append((fid, _T_I64, value))
        return self

    def binary(self, fid: int, value: str | bytes) -> _Struct:
        self.fields.append((fid, _T_BINARY, value.encode() if isinstance(value, str) else value))
        return self

    def struct(self, fid: int, value: _Struct) -> _Struct:
        self.fields.append((fid, _T_STRUCT, value))
        return self

    def list(self, fid: int, element_type: int, values: Sequence[Any]) -> _Struct:
        self.fields.append((fid, _T_LIST, (element_type, values)))
        return self

    def encode(self) -> bytes:
        out = bytearray()
        last = 0
        for fid, kind, value in sorted(self.fields, key=lambda f: f[0]):
            delta = fid - last
            if 0 < delta <= 15:
                out.append((delta << 4) | kind)
            else:
                out.append(kind)
                out += _varint(_zigzag(fid))
            last = fid
            out += _value(kind, value)
        out.append(0)
        return bytes(out)


def _value(kind: int, value: Any) -> bytes:
    if kind in (_T_I32, _T_I64, _T_I16):
        return _varint(_zigzag(int(value)))
    if kind == _T_BINARY:
        return _varint(len(value)) + bytes(value)
    if kind == _T_STRUCT:
        return bytes(value.encode())
    if kind == _T_LIST:
        element_type, values = value
        head = bytes([(len(values) << 4) | element_type]) if len(values) < 15 else bytes([0xF0 | element_type])
        size = b"" if len(values) < 15 else _varint(len(values))
        return head + size + b"".join(_value(element_type, v) for v in values)
    raise ParquetError(f"thrift type {kind} is not written here")


class _Reader:
    """Thrift compact protocol decoding into {field id: value} dicts."""

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise ParquetError("truncated thrift structure")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def varint(self) -> int:
        shift = result = 0
        while True:
            byte = self.byte()
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7

    def zigzag(self) -> int:
        value = self.varint()
        return (value >> 1) ^ -(value & 1)

    def value(self, kind: int) -> Any:
        if kind in (_T_TRUE, _T_FALSE):
            return kind == _T_TRUE
        if kind == _T_BYTE:
            return self.byte()
        if kind in (_T_I16, _T_I32, _T_I64):
            return self.zigzag()
        if kind == _T_DOUBLE:
            (number,) = struct.unpack_from("<d", self.data, self.pos)
            self.pos += 8
            return number
        if kind == _T_BINARY:
            size = self.varint()
            raw = self.data[self.pos : self.pos + size]
            if len(raw) != size:
                raise ParquetError("truncated thrift binary")
            self.pos += size
            return raw
        if kind in (_T_LIST, _T_SET):
            head = self.byte()
            size, element = head >> 4, head & 0x0F
            if size == 15:
                size = self.varint()
            if element in (_T_TRUE, _T_FALSE):
                return [self.byte() == _T_TRUE for _ in range(size)]
            return [self.value(element) for _ in range(size)]
        if kind == _T_MAP:
            size = self.varint()
            if not size:
                return {}
            types = self.byte()
            return {self.value(types >> 4): self.value(types & 0x0F) for _ in range(size)}
        if kind == _T_STRUCT:
            return self.struct()
        raise ParquetError(f"unknown thrift type {kind}")

    def struct(self) -> dict[int, Any]:
        fields: dict[int, Any] = {}
        last = 0
        while True:
            head = self.byte()
            if head == 0:
                return fields
            kind, delta = head & 0x0F, head >> 4
            fid = last + delta if delta else self.zigzag()
            fields[fid] = self.value(kind)
            last = fid


# ------------------------------------------------------------------------------------------ levels, values


def _rle_levels(levels: Sequence[int]) -> bytes:
    """Definition levels (bit width 1) as RLE runs of the hybrid encoding, with the v1 page's length prefix."""
    out = bytearray()
    index = 0
    while index < len(levels):
        value = levels[index]
        run = 1
        while index + run < len(levels) and levels[index + run] == value:
            run += 1
        out += _varint(run << 1)
        out.append(value)
        index += run
    return struct.pack("<I", len(out)) + bytes(out)


def _read_hybrid(data: bytes, pos: int, end: int, count: int, bit_width: int) -> list[int]:
    """Decode `count` values of the RLE/bit-packed hybrid encoding in data[pos:end]."""
    values: list[int] = []
    reader = _Reader(data, pos)
    byte_width = (bit_width + 7) // 8
    mask = (1 << bit_width) - 1
    while len(values) < count:
        if reader.pos >= end:
            raise ParquetError("definition levels end early")
        header = reader.varint()
        if header & 1:  # bit-packed groups of 8
            groups = header >> 1
            size = groups * bit_width
            chunk = int.from_bytes(data[reader.pos : reader.pos + size], "little")
            reader.pos += size
            values.extend((chunk >> (i * bit_width)) & mask for i in range(groups * 8))
        else:
            run = header >> 1
            value = int.from_bytes(data[reader.pos : reader.pos + byte_width], "little")
            reader.pos += byte_width
            values.extend([value] * run)
    return values[:count]


def _check(column: Column, value: Any) -> Any:
    kind = column.type
    if kind == "string":
        if not isinstance(value, str):
            raise ParquetError(f"column {column.name!r} is a string; got {value!r}")
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError as error:
            raise ParquetError(f"column {column.name!r}: {value!r} is not encodable as UTF-8") from error
    if kind == "bigint":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParquetError(f"column {column.name!r} is a bigint; got {value!r}")
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ParquetError(f"column {column.name!r}: {value} does not fit in 64 bits")
        return value
    if kind == "double":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ParquetError(f"column {column.name!r} is a double; got {value!r}")
        return float(value)
    if not isinstance(value, bool):
        raise ParquetError(f"column {column.name!r} is a boolean; got {value!r}")
    return value


def _plain(kind: str, values: list[Any]) -> bytes:
    if kind == "string":
        return b"".join(struct.pack("<I", len(v)) + v for v in values)
    if kind == "bigint":
        return struct.pack(f"<{len(values)}q", *values)
    if kind == "double":
        return struct.pack(f"<{len(values)}d", *values)
    packed = bytearray(math.ceil(len(values) / 8))
    for i, flag in enumerate(values):
        if flag:
            packed[i >> 3] |= 1 << (i & 7)
    return bytes(packed)


def _unplain(kind: str, data: bytes, pos: int, count: int) -> list[Any]:
    if kind == "string":
        values = []
        for _ in range(count):
            (size,) = struct.unpack_from("<I", data, pos)
            pos += 4
            raw = data[pos : pos + size]
            if len(raw) != size:
                raise ParquetError("truncated string value")
            values.append(raw.decode("utf-8"))
            pos += size
        return values
    if kind in ("bigint", "double"):
        return list(struct.unpack_from(f"<{count}{'q' if kind == 'bigint' else 'd'}", data, pos))
    return [bool(data[pos + (i >> 3)] >> (i & 7) & 1) for i in range(count)]


# ------------------------------------------------------------------------------------------ writing


def _compress(codec: int, data: bytes) -> bytes:
    if codec == GZIP:
        return gzip.compress(data, compresslevel=6, mtime=0)
    return data


def _column_chunk(column: Column, cells: list[Any], codec: int, offset: int) -> tuple[bytes, _Struct, int]:
    present = [_check(column, v) for v in cells if v is not None]
    levels = [0 if v is None else 1 for v in cells]
    body = _rle_levels(levels) + _plain(column.type, present)
    compressed = _compress(codec, body)
    header = (
        _Struct()
        .i32(1, _DATA_PAGE)
        .i32(2, len(body))
        .i32(3, len(compressed))
        .struct(5, _Struct().i32(1, len(cells)).i32(2, _PLAIN).i32(3, _RLE).i32(4, _RLE))
        .encode()
    )
    meta = (
        _Struct()
        .i32(1, _PHYSICAL[column.type])
        .list(2, _T_I32, [_PLAIN, _RLE])
        .list(3, _T_BINARY, [column.name.encode()])
        .i32(4, codec)
        .i64(5, len(cells))
        .i64(6, len(header) + len(body))
        .i64(7, len(header) + len(compressed))
        .i64(9, offset)
    )
    chunk = _Struct().i64(2, offset).struct(3, meta)
    return header + compressed, chunk, len(header) + len(body)


def write_parquet(
    columns: Sequence[Column],
    rows: Iterable[Mapping[str, Any]],
    *,
    codec: str = "gzip",
    row_group_rows: int = 100_000,
    metadata: Mapping[str, str] | None = None,
) -> bytes:
    """A Parquet file of the rows (missing keys are nulls; keys outside the schema are an error)."""
    if codec not in _CODECS:
        raise ParquetError(f"codec {codec!r} is not one of {', '.join(_CODECS)}")
    if row_group_rows < 1:
        raise ParquetError("row_group_rows must be positive")
    code = _CODECS[codec]
    names = {c.name for c in columns}
    materialised = []
    for row in rows:
        unknown = set(row) - names
        if unknown:
            raise ParquetError(f"row has columns outside the schema: {sorted(unknown)}")
        materialised.append(row)
    out = bytearray(MAGIC)
    row_groups: list[_Struct] = []
    for start in range(0, len(materialised), row_group_rows):
        group = materialised[start : start + row_group_rows]
        chunks: list[_Struct] = []
        group_start = len(out)
        uncompressed = 0
        for column in columns:
            data, chunk, size = _column_chunk(column, [r.get(column.name) for r in group], code, len(out))
            out += data
            chunks.append(chunk)
            uncompressed += size
        row_groups.append(
            _Struct()
            .list(1, _T_STRUCT, chunks)
            .i64(2, uncompressed)
            .i64(3, len(group))
            .i64(5, group_start)
            .i64(6, len(out) - group_start)
            .i32(7, len(row_groups))
        )
    schema = [_Struct().binary(4, "schema").i32(5, len(columns))]
    for column in columns:
        element = _Struct().i32(1, _PHYSICAL[column.type]).i32(3, _OPTIONAL).binary(4, column.name)
        if column.type == "string":
            element.i32(6, _UTF8).struct(10, _Struct().struct(1, _Struct()))
        schema.append(element)
    footer = (
        _Struct()
        .i32(1, 1)
        .list(2, _T_STRUCT, schema)
        .i64(3, len(materialised))
        .list(4, _T_STRUCT, row_groups)
        .binary(6, CREATED_BY)
    )
    if metadata:
        footer.list(5, _T_STRUCT, [_Struct().binary(1, k).binary(2, v) for k, v in sorted(metadata.items())])
    encoded = footer.encode()
    out += encoded + struct.pack("<I", len(encoded)) + MAGIC
    return bytes(out)


# ------------------------------------------------------------------------------------------ reading


@dataclass
class ParquetFile:
    """A file read back: its schema, rows (dicts, nulls as None) and key/value metadata."""

    columns: tuple[Column, ...]
    rows: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)


def _decompress(codec: int, data: bytes) -> bytes:
    if codec == UNCOMPRESSED:
        return data
    if codec == GZIP:
        return zlib.decompress(data, 16 + zlib.MAX_WBITS)
    raise ParquetError(f"compression codec {codec} is not supported (only uncompressed and GZIP)")


def _read_chunk(data: bytes, column: Column, meta: dict[int, Any], required: bool) -> list[Any]:
    codec, total = meta[4], meta[5]
    reader = _Reader(data, meta.get(11) or meta[9])
    cells: list[Any] = []
    while len(cells) < total:
        header = reader.struct()
        page_type, size, compressed_size = header[1], header[2], header[3]
        page = data[reader.pos : reader.pos + compressed_size]
        reader.pos += compressed_size
        if page_type != _DATA_PAGE:
            raise ParquetError(f"column {column.name!r}: page type {page_type} is not supported")
        body = _decompress(codec, page)
        if len(body) != size:
            raise ParquetError(f"column {column.name!r}: page is {len(body)} bytes, its header says {size}")
        page_header = header[5]
        count, encoding = page_header[1], page_header[2]
        if encoding != _PLAIN:
            raise ParquetError(f"column {column.name!r}: encoding {encoding} is not supported")
        if required:
            levels, values_at = [1] * count, 0
        else:
            (levels_size,) = struct.unpack_from("<I", body, 0)
            levels, values_at = _read_hybrid(body, 4, 4 + levels_size, count, 1), 4 + levels_size
        values = iter(_unplain(column.type, body, values_at, sum(levels)))
        cells.extend(next(values) if level else None for level in levels)
    return cells


def read_parquet(data: bytes) -> ParquetFile:
    """Read a file this module wrote (flat, nullable or required columns, PLAIN, uncompressed or GZIP)."""
    if len(data) < 12 or data[:4] != MAGIC or data[-4:] != MAGIC:
        raise ParquetError("not a Parquet file (no PAR1 magic at both ends)")
    (footer_size,) = struct.unpack_from("<I", data, len(data) - 8)
    start = len(data) - 8 - footer_size
    if start < 4:
        raise ParquetError("footer length points outside the file")
    footer = _Reader(data, start).struct()
    schema = footer[2]
    columns = []
    required: list[bool] = []
    for element in schema[1:]:
        if element.get(5):
            raise ParquetError("nested schemas are not supported")
        physical = element.get(1)
        if physical not in _LOGICAL:
            raise ParquetError(f"column {element[4].decode()!r}: physical type {physical} is not supported")
        columns.append(Column(element[4].decode(), _LOGICAL[physical]))
        required.append(element.get(3) == _REQUIRED)
    result = ParquetFile(tuple(columns))
    result.metadata = {kv[1].decode(): kv.get(2, b"").decode() for kv in footer.get(5, [])}
    for group in footer.get(4, []):
        chunks = group[1]
        by_column = [
            _read_chunk(data, column, chunk[3], needed)
            for column, chunk, needed in zip(columns, chunks, required, strict=True)
        ]
        for index in range(group[3]):
            result.rows.append({c.name: cells[index] for c, cells in zip(columns, by_column, strict=True)})
    return result
