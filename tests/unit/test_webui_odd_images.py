"""Images a hostile but fair user sends: each is a 4xx with a plain message, never a 500 and
never a "model service" error; what passes is what TensorFlow's decoder would see too.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from tests.support.servers import free_port
from tests.unit.test_webui_api import assert_json_error, b64, drawing, png_bytes
from webui import create_app, validation


def with_chunk(png: bytes, kind: bytes, body: bytes = b"") -> bytes:
    """`png` with one more chunk (correct CRC) just before IEND."""
    chunk = struct.pack(">I4s", len(body), kind) + body
    chunk += struct.pack(">I", zlib.crc32(chunk[4:]))
    iend = png.rindex(b"IEND") - 4
    return png[:iend] + chunk + png[iend:]


def bad_crc(png: bytes, kind: bytes) -> bytes:
    """`png` with the CRC of its first `kind` chunk flipped."""
    start = png.index(kind) - 4
    length = struct.unpack(">I", png[start:start + 4])[0]
    crc_at = start + 8 + length
    return png[:crc_at] + bytes(b ^ 0xFF for b in png[crc_at:crc_at + 4]) + png[crc_at + 4:]


def sixteen_bit(values: np.ndarray) -> bytes:
    """A 16-bit gray PNG holding `values` as they are."""
    return png_bytes(Image.fromarray(values.astype(np.uint16)))


def drawing_array() -> np.ndarray:
    return np.asarray(drawing(), dtype=np.uint16)


def bomb() -> bytes:
    """A 20000x20000 all-black PNG: a few hundred KB that would decode to 400 megapixels."""
    return png_bytes(Image.new("1", (20000, 20000)))


ODD_IMAGES = [
    # id, the upload, status, words in the message
    ("decompression bomb", bomb, 413, "too many pixels"),
    ("CIELab TIFF", lambda: png_bytes(Image.new("LAB", (64, 64), (50, 10, 10)), "TIFF"),
     415, "LAB"),
    ("unknown critical chunk", lambda: with_chunk(png_bytes(drawing()), b"ZZZZ", b"x"), 400,
     "ZZZZ"),
    ("bad IEND CRC", lambda: bad_crc(png_bytes(drawing()), b"IEND"), 400, "IEND"),
    ("bad IDAT CRC", lambda: bad_crc(png_bytes(drawing()), b"IDAT"), 400, "IDAT"),
    ("16-bit PNG with 8-bit values", lambda: sixteen_bit(drawing_array()), 422, "empty"),
]


@pytest.fixture
def app():
    return create_app({"TF_SERVING_URL": f"http://127.0.0.1:{free_port()}"})


@pytest.mark.parametrize("make,status,words", [case[1:] for case in ODD_IMAGES],
                         ids=[case[0] for case in ODD_IMAGES])
def test_odd_images_are_the_clients_fault(app, make, status, words):
    response = app.test_client().post("/api/predict", json={"image": b64(make())})
    assert_json_error(response, status, words)
    metrics = app.test_client().get("/metrics").get_data(as_text=True)
    assert "webui_tf_serving_errors_total{" not in metrics  # never counted against serving


def test_a_16_bit_png_is_scaled_as_tensorflow_scales_it():
    checked = validation.check_image(sixteen_bit(drawing_array() * 257), 2048)
    sent = Image.open(io.BytesIO(checked.png))
    assert (sent.format, sent.mode) == ("PNG", "L")
    assert np.array_equal(np.asarray(sent), np.asarray(drawing()))


def test_ancillary_chunks_of_any_name_pass():
    data = with_chunk(png_bytes(drawing()), b"zzZz", b"private")
    assert validation.check_image(data, 2048).png == data
