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
PNG_MAX_LENGTH = 2**31 - 1  # a chunk length, width or height beyond this is an error
PNG_PALETTE = 3  # the colour type whose pixels index PLTE
# IHDR's bit depths for each colour type (PNG spec, table 11.1), which libpng enforces.
PNG_BIT_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
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
        # point() cannot scale I;16B (a big-endian TIFF): widen to I first, as Pillow can.
        image = image.convert("I").point(lambda value: value * (1 / 257)).convert("L")
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
    """Refuse a PNG that Pillow reads but libpng, TensorFlow's decoder, refuses.

    Pillow reads only what it needs and stops at the image data; libpng checks every chunk
    up to IEND, and its refusal would otherwise look like a fault of the model service. The
    rules are libpng's errors (its warnings still decode): sound checksums, four-letter chunk
    types, no unknown critical chunk, one valid IHDR first, and for a palette image one PLTE
    of whole entries before the image data.
    """
    offset = len(PNG_SIGNATURE)
    color_type = None  # set by IHDR
    has_palette = has_data = False
    while offset + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        end = offset + 12 + length
        if length > PNG_MAX_LENGTH or end > len(data):
            break
        body = data[offset + 8:end - 4]
        name = kind.decode("ascii", "backslashreplace")
        if zlib.crc32(kind + body) != struct.unpack(">I", data[end - 4:end])[0]:
            raise _bad_chunk(name, "its checksum is wrong")
        if not kind.isalpha():
            raise _bad_chunk(name, "a chunk type must be four letters")
        if kind[:1].isupper() and kind not in PNG_CRITICAL_CHUNKS:
            raise _bad_chunk(name, "it is a critical chunk no decoder knows")
        if color_type is None and kind != b"IHDR":
            raise _bad_chunk(name, "IHDR must come first")
        if kind == b"IHDR":
            if color_type is not None:
                raise _bad_chunk(name, "a PNG has only one")
            color_type = _check_png_header(body)
        elif kind == b"PLTE":
            if has_palette:
                raise _bad_chunk(name, "a PNG has only one")
            if color_type == PNG_PALETTE and (not body or len(body) % 3 or len(body) > 768):
                raise _bad_chunk(name, f"{len(body)} bytes are not 1 to 256 colours of 3 bytes")
            has_palette = True
        elif kind == b"IDAT":
            if color_type == PNG_PALETTE and not has_palette:
                raise _bad_chunk(name, "a palette image needs its PLTE chunk before it")
            has_data = True
        elif kind == b"IEND":
            if not has_data:
                raise _bad_chunk(name, "there is no image data (IDAT) before it")
            return
        offset = end
    raise InvalidImage(messages.DAMAGED_IMAGE)


def _check_png_header(body: bytes) -> int:
    """Check IHDR's fields as libpng does; return the colour type."""
    if len(body) != 13:
        raise _bad_chunk("IHDR", f"it holds {len(body)} bytes, not 13")
    width, height, depth, color_type, compression, filtering, interlace = struct.unpack(
        ">IIBBBBB", body)
    problems = [
        f"width {width}" if not 0 < width <= PNG_MAX_LENGTH else None,
        f"height {height}" if not 0 < height <= PNG_MAX_LENGTH else None,
        f"colour type {color_type}" if color_type not in PNG_BIT_DEPTHS else None,
        f"bit depth {depth} for colour type {color_type}"
        if depth not in PNG_BIT_DEPTHS.get(color_type, (depth,)) else None,
        f"compression method {compression}" if compression else None,
        f"filter method {filtering}" if filtering else None,
        f"interlace method {interlace}" if interlace > 1 else None,
    ]
    wrong = [problem for problem in problems if problem]
    if wrong:
        raise _bad_chunk("IHDR", "invalid " + ", ".join(wrong))
    return color_type


def _bad_chunk(chunk: str, why: str) -> InvalidImage:
    return InvalidImage(messages.PNG_BAD_CHUNK.format(chunk=chunk, why=why))


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
