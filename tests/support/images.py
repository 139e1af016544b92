"""Digits as the clients send them: PNG bytes, a canvas-sized drawing, a data URL; and PNGs
taken apart into chunks and put together again, to build the damaged ones clients send too.
"""

from __future__ import annotations

import base64
import io
import struct
import zlib

import numpy as np
from PIL import Image


def png(array: np.ndarray, mode: str | None = None) -> bytes:
    """Encode a uint8 array (gray, or RGBA with mode="RGBA") as PNG, pixel for pixel."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(array, dtype=np.uint8), mode).save(buffer, format="PNG")
    return buffer.getvalue()


def canvas_png(pixels: np.ndarray, side: int = 280) -> bytes:
    """An MNIST digit (light on dark, 28x28) as a canvas would send it: dark on light, scaled."""
    image = Image.fromarray(255 - np.asarray(pixels, dtype=np.uint8))
    return png(np.asarray(image.resize((side, side), Image.Resampling.BILINEAR)))


def data_url(encoded: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(encoded).decode()


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_chunks(encoded: bytes) -> list[tuple[bytes, bytes]]:
    """A PNG's chunks as (type, data) pairs, in file order."""
    chunks, offset = [], len(PNG_SIGNATURE)
    while offset < len(encoded):
        length, kind = struct.unpack(">I4s", encoded[offset:offset + 8])
        chunks.append((kind, encoded[offset + 8:offset + 8 + length]))
        offset += 12 + length
    return chunks


def png_from_chunks(chunks: list[tuple[bytes, bytes]]) -> bytes:
    """A PNG made of `chunks` as given, each with a correct length and CRC."""
    out = [PNG_SIGNATURE]
    for kind, data in chunks:
        out.append(struct.pack(">I4s", len(data), kind) + data
                   + struct.pack(">I", zlib.crc32(kind + data)))
    return b"".join(out)
