#!/usr/bin/env python3
"""Writes argus.envelope/v1 messages: every payload type, standard library only.

The byte layout is schemas/envelope.md (bincode 2, fixed-width little-endian integers);
this module follows it with nothing but ``struct``. Each ``*_envelope`` function returns
the value bytes; ``headers()`` gives the Kafka headers Argus's own producer sets, and
``key`` is the source id.

    import argus_envelope as ae
    value = ae.jpeg_envelope("cam-1", 0, open("frame.jpg", "rb").read())
    value = ae.png_envelope("cam-1", 1, png_bytes)
    value = ae.raw_envelope("cam-1", 2, 640, 480, ae.BGR8, pixels)   # e.g. an OpenCV frame
    value = ae.record_envelope("C-0001", 3, {"tenure": 12, "plan": "pro", "autopay": True})

The capture time defaults to now (µs since the Unix epoch, UTC); pass ``capture_time_us``
to set it. With confluent-kafka installed (optional; ``pip install confluent-kafka``),
``send()`` produces one envelope with its key and headers.

Command line (writes the value to stdout, or a file with --out):
    python3 clients/python/argus_envelope.py jpeg --source cam-1 --file frame.jpg > frame.bin
    python3 clients/python/argus_envelope.py record --source C-1 --json '{"tenure": 12}'
    python3 clients/python/argus_envelope.py raw --source cam-1 --width 2 --height 1 \\
        --layout bgr8 --hex 010203040506
    ... --brokers localhost:9092 --topic frames.lobby   # produce it (needs confluent-kafka)
"""
import argparse
import json
import math
import struct
import sys
import time

SCHEMA_VERSION = 1
ENVELOPE_SCHEMA = "argus.envelope/v1"

# Payload variants (u32 index).
ENCODED, RAW, RECORD = 0, 1, 2
# Encoded image formats.
JPEG, PNG = 0, 1
# Raw pixel layouts, and their bytes per pixel.
RGB8, BGR8, GRAY8 = 0, 1, 2
CHANNELS = {RGB8: 3, BGR8: 3, GRAY8: 1}
LAYOUTS = {"rgb8": RGB8, "bgr8": BGR8, "gray8": GRAY8}
# Record value variants.
NULL, BOOL, INT, FLOAT, TEXT = 0, 1, 2, 3, 4

CONTENT_TYPES = {
    (ENCODED, JPEG): "image/jpeg",
    (ENCODED, PNG): "image/png",
    RAW: "application/x-argus-raw-image",
    RECORD: "application/x-argus-record",
}


def now_us() -> int:
    """Now, in µs since the Unix epoch (UTC): the unit of every ``*_us`` time on the wire."""
    return time.time_ns() // 1000


def _u32(n: int) -> bytes:
    return struct.pack("<I", n)


def _u64(n: int) -> bytes:
    return struct.pack("<Q", n)


def _bytes(b: bytes) -> bytes:
    return _u64(len(b)) + bytes(b)


def _string(s: str) -> bytes:
    return _bytes(s.encode("utf-8"))


def _envelope(source_id: str, sequence: int, capture_time_us, payload: bytes) -> bytes:
    if capture_time_us is None:
        capture_time_us = now_us()
    return (
        struct.pack("<H", SCHEMA_VERSION)
        + _string(source_id)
        + _u64(sequence)
        + struct.pack("<q", capture_time_us)
        + payload
    )


def encoded_envelope(source_id: str, sequence: int, image_format: int, data: bytes,
                     capture_time_us=None) -> bytes:
    """An encoded image (``JPEG`` or ``PNG``): the file's bytes, untouched."""
    if image_format not in (JPEG, PNG):
        raise ValueError(f"image_format must be JPEG ({JPEG}) or PNG ({PNG}), got {image_format!r}")
    return _envelope(source_id, sequence, capture_time_us,
                     _u32(ENCODED) + _u32(image_format) + _bytes(data))


def jpeg_envelope(source_id: str, sequence: int, jpeg: bytes, capture_time_us=None) -> bytes:
    """A JPEG file's bytes as an envelope."""
    return encoded_envelope(source_id, sequence, JPEG, jpeg, capture_time_us)


def png_envelope(source_id: str, sequence: int, png: bytes, capture_time_us=None) -> bytes:
    """A PNG file's bytes as an envelope."""
    return encoded_envelope(source_id, sequence, PNG, png, capture_time_us)


def raw_envelope(source_id: str, sequence: int, width: int, height: int, layout: int,
                 data: bytes, capture_time_us=None) -> bytes:
    """Raw 8-bit pixels, row-major, channels interleaved: ``width*height*channels`` bytes
    (``RGB8``/``BGR8``: 3, ``GRAY8``: 1). A numpy array works as ``array.tobytes()``."""
    if layout not in CHANNELS:
        raise ValueError(f"layout must be RGB8, BGR8 or GRAY8, got {layout!r}")
    data = bytes(data)
    if len(data) != width * height * CHANNELS[layout]:
        raise ValueError(f"{width}x{height} with {CHANNELS[layout]} channels needs "
                         f"{width * height * CHANNELS[layout]} bytes, got {len(data)}")
    return _envelope(source_id, sequence, capture_time_us,
                     _u32(RAW) + _u32(width) + _u32(height) + _u32(layout) + _bytes(data))


def _value(v) -> bytes:
    # bool before int: True is an int in Python.
    if v is None:
        return _u32(NULL)
    if isinstance(v, bool):
        return _u32(BOOL) + (b"\x01" if v else b"\x00")
    if isinstance(v, int):
        return _u32(INT) + struct.pack("<q", v)
    if isinstance(v, float):
        return _u32(FLOAT) + struct.pack("<d", v)
    if isinstance(v, str):
        return _u32(TEXT) + _string(v)
    raise TypeError(f"record values are None, bool, int, float or str; got {type(v).__name__}")


def record_envelope(source_id: str, sequence: int, fields, capture_time_us=None) -> bytes:
    """A record: ``fields`` is a dict (or (name, value) pairs), values None, bool, int
    (64-bit), float or str. Tabular bundles read the fields their manifest names."""
    items = list(fields.items() if isinstance(fields, dict) else fields)
    body = _u64(len(items))
    for name, value in items:
        body += _string(name) + _value(value)
    return _envelope(source_id, sequence, capture_time_us, _u32(RECORD) + body)


def content_type(value: bytes) -> str:
    """The ``content-type`` header of an envelope this module wrote."""
    (id_len,) = struct.unpack_from("<Q", value, 2)
    at = 2 + 8 + id_len + 8 + 8
    (variant,) = struct.unpack_from("<I", value, at)
    if variant == ENCODED:
        (fmt,) = struct.unpack_from("<I", value, at + 4)
        return CONTENT_TYPES[(ENCODED, fmt)]
    return CONTENT_TYPES[variant]


def headers(value: bytes, capture_time_us=None):
    """The Kafka headers Argus's producer sets on an envelope (schema, content type, capture
    time), as a list of (name, bytes) pairs. The capture time is read from the value
    unless given."""
    if capture_time_us is None:
        (id_len,) = struct.unpack_from("<Q", value, 2)
        (capture_time_us,) = struct.unpack_from("<q", value, 2 + 8 + id_len + 8)
    return [
        ("argus-schema", ENVELOPE_SCHEMA.encode()),
        ("content-type", content_type(value).encode()),
        ("argus-capture-us", str(capture_time_us).encode()),
    ]


def send(producer, topic: str, source_id: str, value: bytes) -> None:
    """Produces one envelope with a confluent-kafka ``Producer``: key = source id (so one
    camera's frames stay in order on one partition), with :func:`headers`. Call
    ``producer.flush()`` when done."""
    producer.produce(topic, key=source_id.encode("utf-8"), value=value, headers=headers(value))


def _main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Write one argus.envelope/v1 message.")
    p.add_argument("kind", choices=["jpeg", "png", "raw", "record"])
    p.add_argument("--source", required=True, help="source id (camera or entity); also the key")
    p.add_argument("--sequence", type=int, default=0)
    p.add_argument("--capture-us", type=int, default=None, help="default: now")
    p.add_argument("--file", help="jpeg/png: the image file; raw: the pixel bytes")
    p.add_argument("--hex", help="raw: the pixel bytes in hex (instead of --file)")
    p.add_argument("--width", type=int)
    p.add_argument("--height", type=int)
    p.add_argument("--layout", choices=sorted(LAYOUTS), default="rgb8")
    p.add_argument("--json", help="record: one JSON object (numbers, strings, booleans, null)")
    p.add_argument("--out", help="write the value here (default: stdout)")
    p.add_argument("--brokers", help="produce to Kafka instead (needs confluent-kafka)")
    p.add_argument("--topic", help="with --brokers: the input topic, e.g. frames.lobby")
    a = p.parse_args(argv)

    def data() -> bytes:
        if a.hex is not None:
            return bytes.fromhex(a.hex)
        if a.file is None:
            p.error(f"{a.kind} needs --file" + (" or --hex" if a.kind == "raw" else ""))
        with open(a.file, "rb") as f:
            return f.read()

    if a.kind in ("jpeg", "png"):
        fmt = JPEG if a.kind == "jpeg" else PNG
        value = encoded_envelope(a.source, a.sequence, fmt, data(), a.capture_us)
    elif a.kind == "raw":
        if a.width is None or a.height is None:
            p.error("raw needs --width and --height")
        value = raw_envelope(a.source, a.sequence, a.width, a.height, LAYOUTS[a.layout],
                             data(), a.capture_us)
    else:
        if a.json is None:
            p.error("record needs --json")
        obj = json.loads(a.json)
        if not isinstance(obj, dict):
            p.error("--json must be one JSON object")
        for k, v in obj.items():
            if isinstance(v, float) and not math.isfinite(v):
                p.error(f"field {k!r} is not a finite number")
        value = record_envelope(a.source, a.sequence, obj, a.capture_us)

    if a.brokers:
        if not a.topic:
            p.error("--brokers needs --topic")
        try:
            from confluent_kafka import Producer  # optional: only for --brokers
        except ImportError:
            p.error("--brokers needs confluent-kafka: pip install confluent-kafka")
        producer = Producer({"bootstrap.servers": a.brokers, "partitioner": "murmur2_random"})
        send(producer, a.topic, a.source, value)
        if producer.flush(10) != 0:
            print("the message was not delivered within 10 s", file=sys.stderr)
            return 1
    elif a.out:
        with open(a.out, "wb") as f:
            f.write(value)
    else:
        sys.stdout.buffer.write(value)
    return 0


if __name__ == "__main__":
    sys.exit(_main())
