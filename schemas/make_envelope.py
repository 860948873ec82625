#!/usr/bin/env python3
"""Writes an argus.envelope/v1 message using only the layout in schemas/envelope.md.

Proof that the layout description is enough to produce frames from any language.
Usage: python3 schemas/make_envelope.py [IMAGE.jpg] > frame.bin
Without an argument it writes the fixed example checked in as golden/python-jpeg.hex.
"""
import struct
import sys


def string(s: bytes) -> bytes:
    return struct.pack("<Q", len(s)) + s


def envelope_jpeg(source_id: str, sequence: int, capture_time_us: int, jpeg: bytes) -> bytes:
    out = struct.pack("<H", 1)                    # schema_version
    out += string(source_id.encode("utf-8"))      # source_id
    out += struct.pack("<Q", sequence)            # sequence
    out += struct.pack("<q", capture_time_us)     # capture_time_us
    out += struct.pack("<I", 0)                   # payload variant 0 = Encoded
    out += struct.pack("<I", 0)                   # format 0 = Jpeg (1 = Png)
    out += string(jpeg)                           # bytes
    return out


if __name__ == "__main__":
    if len(sys.argv) > 1:
        data = open(sys.argv[1], "rb").read()
        sys.stdout.buffer.write(envelope_jpeg("cam-python", 0, 1_700_000_000_000_000, data))
    else:
        print(envelope_jpeg("cam-python", 3, 1_700_000_000_000_000, b"not really a jpeg").hex())
