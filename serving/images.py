"""Refuse encoded images over a pixel budget from their headers, before TensorFlow decodes them.

A 17 KB one-bit PNG can claim 12000x12000 pixels: `decode_image` and the graph's float copies
of it take ~740 MB for that one request. Pillow reads only the header to learn the size, so any
string input holding an image Pillow knows is measured first; bytes it does not know are left
to the graph, which refuses them itself.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping

import numpy as np
from PIL import Image

from serving.errors import invalid
from serving.tensors import STRING


def _size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from an image's header; None when Pillow does not know the bytes."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                return image.size
    except Image.DecompressionBombError:  # hundreds of megapixels: Pillow refuses to open it
        return (Image.MAX_IMAGE_PIXELS, 2)
    except (OSError, ValueError, SyntaxError):
        return None


def check_images(inputs: Mapping[str, np.ndarray], max_pixels: int) -> None:
    """Raise INVALID_ARGUMENT for the first encoded image of more than `max_pixels` pixels."""
    for name, array in inputs.items():
        if array.dtype != STRING:
            continue
        for index, value in enumerate(array.reshape(-1)):
            size = _size(bytes(value))
            if size is not None and size[0] * size[1] > max_pixels:
                raise invalid(f"input tensor {name}, element {index}: an image of "
                              f"{size[0]}x{size[1]} pixels is more than the limit of "
                              f"{max_pixels} pixels (--max_image_pixels)")
