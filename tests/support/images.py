"""Digits as the clients send them: PNG bytes, a canvas-sized drawing, a data URL."""

from __future__ import annotations

import base64
import io

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
