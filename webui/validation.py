"""Check an uploaded drawing before it costs the model service anything.

The model's `predict_image` signature does the real normalisation; this module only decodes
enough to reject what is not a usable image, with a message a person can act on.
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from webui import messages

# Below this ink contrast (0-255) the model treats an image as blank too (training/preprocess).
MIN_CONTRAST = 24
# Alpha below this anywhere means the image is a transparent canvas: ink is in the alpha plane.
OPAQUE_ALPHA = 250


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

    PNGs are passed on untouched; any other format Pillow reads is re-encoded as PNG, so the
    model only ever gets the format it handles best.
    """
    try:
        image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, ValueError):
        raise InvalidImage(messages.NOT_AN_IMAGE) from None
    width, height = image.size  # read from the header, before any pixels are decoded
    if max(width, height) > max_side:
        raise InvalidImage(
            messages.IMAGE_TOO_LARGE.format(width=width, height=height, limit=max_side), 413
        )
    try:
        image.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise InvalidImage(messages.DAMAGED_IMAGE) from None
    if is_blank(image):
        raise InvalidImage(messages.EMPTY_DRAWING, 422)
    if image.format == "PNG":
        return CheckedImage(data, width, height)
    return CheckedImage(_as_png(image), width, height)


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
