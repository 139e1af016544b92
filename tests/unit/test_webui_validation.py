"""What the web UI sends to the model: PNGs untouched, other formats as PNG."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.unit.test_webui_api import drawing, png_bytes
from webui import validation


def test_a_png_is_passed_on_byte_for_byte():
    data = png_bytes(drawing())
    assert validation.check_image(data, 2048).png == data


@pytest.mark.parametrize("fmt,mode", [("JPEG", "L"), ("GIF", "P"), ("BMP", "RGB"),
                                      ("WEBP", "RGBA"), ("TIFF", "I;16")])
def test_other_formats_are_sent_as_png(fmt, mode):
    image = drawing(mode="L")
    if mode == "I;16":  # full 16-bit range: 0-255 in 16 bits would be a blank image
        image = image.convert("I").point(lambda value: value * 257).convert("I;16")
    else:
        image = image.convert(mode)
    checked = validation.check_image(png_bytes(image, fmt), 2048)
    assert Image.open(io.BytesIO(checked.png)).format == "PNG"
    assert (checked.width, checked.height) == (280, 280)


def test_the_side_limit_is_checked_before_decoding_pixels():
    big = png_bytes(Image.new("1", (4000, 10)))
    with pytest.raises(validation.InvalidImage) as refused:
        validation.check_image(big, 2048)
    assert refused.value.status == 413
