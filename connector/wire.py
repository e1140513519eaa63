"""The Confluent wire format: magic byte 0, a 4-byte big-endian schema id, Avro binary.

Producers that already speak it (Confluent serializers, kcat -s avro) can publish to streamrec
unchanged, with the schema ids of streamrec's registry (docs/producing.md).
"""

from __future__ import annotations

import io
import struct
from typing import Any

import fastavro
from fastavro.read import SchemaResolutionError

from connector.exceptions import InvalidEventError

MAGIC = 0
_HEADER = struct.Struct(">bI")


def is_wire_format(raw: bytes) -> bool:
    """Whether `raw` starts like a Confluent wire-format record (JSON never starts with 0)."""
    return len(raw) >= _HEADER.size and raw[0] == MAGIC


def schema_id(raw: bytes) -> int:
    """The schema id in the header of a wire-format record."""
    return int(_HEADER.unpack_from(raw)[1])


def encode(schema_id: int, parsed: dict[str, Any], record: dict[str, Any]) -> bytes:
    """`record` as Avro binary under `schema_id` in the wire format."""
    buffer = io.BytesIO()
    buffer.write(_HEADER.pack(MAGIC, schema_id))
    fastavro.schemaless_writer(buffer, parsed, record)
    return buffer.getvalue()


def decode(
    raw: bytes, parsed: dict[str, Any], reader: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The record in a wire-format message whose schema is `parsed`, read as `reader` by
    Avro schema resolution when given; InvalidEventError if the bytes do not decode (or do
    not resolve) or are longer than the record."""
    buffer = io.BytesIO(raw)
    buffer.seek(_HEADER.size)
    try:
        record = fastavro.schemaless_reader(buffer, parsed, reader)
    except (
        EOFError,
        ValueError,
        TypeError,
        IndexError,
        UnicodeDecodeError,
        OverflowError,
        SchemaResolutionError,
    ) as exc:
        raise InvalidEventError(
            f"Avro record does not decode with schema {schema_id(raw)}: {exc}"
        ) from exc
    if buffer.tell() != len(raw):
        raise InvalidEventError(f"Avro record has {len(raw) - buffer.tell()} trailing bytes")
    if not isinstance(record, dict):
        raise InvalidEventError("Avro record is not a record")
    return record
