"""Check an uploaded drawing before it costs the model service anything.

The model's `predict_image` signature does the real normalisation; this module only decodes
enough to reject what is not a usable image, with a message a person can act on.
"""

from __future__ import annotations

import base64
import binascii
import io
import struct
import zlib
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from contract import MIN_INK_CONTRAST
from webui import messages

# Below this ink contrast (0-255) the model treats an image as blank too (training/preprocess).
MIN_CONTRAST = MIN_INK_CONTRAST
# Alpha below this anywhere means the image is a transparent canvas: ink is in the alpha plane.
OPAQUE_ALPHA = 250
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The only critical chunks TensorFlow's PNG decoder (libpng) knows; any other one it refuses.
PNG_CRITICAL_CHUNKS = frozenset({b"IHDR", b"PLTE", b"IDAT", b"IEND"})
# Pillow's modes for one channel of more than 8 bits: TensorFlow scales these by 1/257.
WIDE_GRAY_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})


class InvalidImage(ValueError):
    """The request's image cannot be used; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class CheckedImage:
    png: bytes  # what to send to the model: the upload itself when it is a PNG
    width: int
    height: int


def image_field(body: object) -> str:
    """Return the `image` string of a parsed JSON body, or raise InvalidImage."""
    if not isinstance(body, dict):
        raise InvalidImage(messages.NOT_AN_OBJECT)
    if "image" not in body:
        raise InvalidImage(messages.MISSING_IMAGE)
    value = body["image"]
    if not isinstance(value, str):
        kind = "null" if value is None else type(value).__name__
        raise InvalidImage(messages.IMAGE_NOT_TEXT.format(kind=kind))
    return value


def decode_base64(value: str) -> bytes:
    """Decode a data URL (`data:image/png;base64,...`) or bare standard base64."""
    text = value.strip()
    if text.startswith("data:"):
        header, _, text = text.partition(",")
        if not header.endswith(";base64"):
            raise InvalidImage(messages.DATA_URL_NOT_BASE64)
    text = "".join(text.split())  # base64 wrapped over lines is still base64
    if not text:
        raise InvalidImage(messages.EMPTY_IMAGE)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidImage(messages.NOT_BASE64) from None


def check_image(data: bytes, max_side: int) -> CheckedImage:
    """Decode `data` with Pillow; refuse non-images, oversized sides and empty drawings.

    A PNG is passed on untouched once its chunks are sound as libpng (TensorFlow's decoder)
    reads them; any other format Pillow reads, and a 16-bit gray PNG, is re-encoded as 8-bit
    PNG the way TensorFlow would scale it, so the blank check sees what the model would.
    """
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:  # a header that claims hundreds of megapixels
        raise InvalidImage(messages.IMAGE_FAR_TOO_LARGE.format(limit=max_side), 413) from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise InvalidImage(messages.NOT_AN_IMAGE) from None
    width, height = image.size  # read from the header, before any pixels are decoded
    if max(width, height) > max_side:
        raise InvalidImage(
            messages.IMAGE_TOO_LARGE.format(width=width, height=height, limit=max_side), 413
        )
    if image.format == "PNG":
        check_png_chunks(data)
    try:
        image.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise InvalidImage(messages.DAMAGED_IMAGE) from None
    if image.mode in WIDE_GRAY_MODES:
        image = image.point(lambda value: value * (1 / 257)).convert("L")
    try:
        blank = is_blank(image)
    except ValueError:  # a colour space Pillow cannot turn into gray, e.g. CIELab
        raise InvalidImage(messages.UNSUPPORTED_MODE.format(mode=image.mode), 415) from None
    if blank:
        raise InvalidImage(messages.EMPTY_DRAWING, 422)
    if image.format == "PNG":
        return CheckedImage(data, width, height)
    return CheckedImage(_as_png(image), width, height)


def check_png_chunks(data: bytes) -> None:
    """Refuse a PNG that Pillow reads but libpng does not: a bad CRC, an unknown critical chunk.

    Pillow skips what it does not need (it stops reading at the image data); TensorFlow's
    decoder checks every chunk up to IEND, and its refusal would otherwise look like a fault
    of the model service.
    """
    offset = len(PNG_SIGNATURE)
    while offset + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        end = offset + 8 + length + 4
        if end > len(data):
            break
        crc = struct.unpack(">I", data[end - 4:end])[0]
        if zlib.crc32(data[offset + 4:end - 4]) != crc:
            raise InvalidImage(messages.PNG_BAD_CHUNK.format(
                chunk=kind.decode("latin-1"), why="its checksum is wrong"))
        if kind[:1].isupper() and kind not in PNG_CRITICAL_CHUNKS:
            raise InvalidImage(messages.PNG_BAD_CHUNK.format(
                chunk=kind.decode("latin-1"), why="it is a critical chunk no decoder knows"))
        if kind == b"IEND":
            return
        offset = end
    raise InvalidImage(messages.DAMAGED_IMAGE)


def is_blank(image: Image.Image) -> bool:
    """Say whether there is no ink: too little contrast in alpha (transparent) or in gray."""
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    if has_alpha:
        alpha = image.convert("RGBA").getchannel("A")
        low, high = alpha.getextrema()
        if low < OPAQUE_ALPHA:
            return high - low < MIN_CONTRAST
    low, high = image.convert("L").getextrema()
    return high - low < MIN_CONTRAST


def _as_png(image: Image.Image) -> bytes:
    if image.mode not in ("L", "LA", "RGB", "RGBA"):
        has_alpha = "A" in image.getbands() or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def parse(body: object, max_side: int) -> CheckedImage:
    """Run every check on a parsed JSON body; return the PNG to send to the model."""
    return check_image(decode_base64(image_field(body)), max_side)
