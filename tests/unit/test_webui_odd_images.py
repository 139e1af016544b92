"""Images a hostile but fair user sends: each is a 4xx with a plain message, never a 500 and
never a "model service" error; what passes is what TensorFlow's decoder would see too.
"""

from __future__ import annotations

import io
import json
import struct
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from tests.support.images import png_chunks, png_from_chunks
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


def rechunked(png: bytes, change) -> bytes:
    """`png` with its chunk list passed through `change` (a list of (type, data) in, out)."""
    return png_from_chunks(change(png_chunks(png)))


def ihdr_compression(method: int) -> bytes:
    def change(chunks):
        (kind, header), *rest = chunks
        return [(kind, header[:10] + bytes([method]) + header[11:]), *rest]
    return rechunked(png_bytes(drawing()), change)


def short_palette() -> bytes:
    """A two-colour palette PNG whose PLTE holds 7 bytes: two entries and a stray byte."""
    image = drawing().convert("P", palette=Image.Palette.ADAPTIVE, colors=2)
    return rechunked(png_bytes(image), lambda chunks: [
        (kind, data[:6] + b"\0" if kind == b"PLTE" else data) for kind, data in chunks])


def big_endian_tiff() -> bytes:
    """A 16-bit gray TIFF stored big-endian: Pillow opens it in mode I;16B."""
    values = (np.asarray(drawing(), dtype=np.uint16) * 257).astype(">u2")
    return png_bytes(Image.frombytes("I;16B", (280, 280), values.tobytes()), "TIFF")


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
    # Pillow reads these four; TensorFlow's decoder (libpng) refuses them.
    ("two IHDR chunks", lambda: rechunked(png_bytes(drawing()),
                                          lambda chunks: [chunks[0], *chunks]), 400, "IHDR"),
    ("IHDR compression method 1", lambda: ihdr_compression(1), 400, "compression"),
    ("chunk type a1b2", lambda: with_chunk(png_bytes(drawing()), b"a1b2", b"x"), 400, "a1b2"),
    ("7-byte PLTE", short_palette, 400, "PLTE"),
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


def test_a_big_endian_16_bit_tiff_is_scaled_as_tensorflow_scales_it():
    """Pillow cannot apply point() to mode I;16B: this image once answered 500."""
    checked = validation.check_image(big_endian_tiff(), 2048)
    sent = Image.open(io.BytesIO(checked.png))
    assert (sent.format, sent.mode) == ("PNG", "L")
    assert np.array_equal(np.asarray(sent), np.asarray(drawing()))


def test_ancillary_chunks_of_any_name_pass():
    data = with_chunk(png_bytes(drawing()), b"zzZz", b"private")
    assert validation.check_image(data, 2048).png == data


class RefusingServing(ThreadingHTTPServer):
    """Answers as TF Serving does when its decoder refuses an image: labels resolve, and every
    predict is a 400 with TensorFlow's message. What we send already passes the web UI's
    checks, so this shape cannot be had from the real server through the page."""

    daemon_threads = True
    REFUSAL = ("Invalid PNG data, size 10424\n\t [[{{function_node __inference_serve_image}}"
               "{{node map/while/body/_1/DecodeImage}}]]")

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self._answer(200, {"model_version_status": [
                    {"version": "1", "state": "AVAILABLE",
                     "status": {"error_code": "OK", "error_message": ""}}]})

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                self._answer(400, {"error": RefusingServing.REFUSAL})

            def _answer(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture
def refusing_serving():
    server = RefusingServing()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_models_refusal_is_passed_on_as_the_clients_400(refusing_serving):
    app = create_app({"TF_SERVING_URL": refusing_serving, "FEEDBACK": "off"})
    response = app.test_client().post("/api/predict", json={"image": b64(png_bytes(drawing()))})
    assert_json_error(response, 400, "could not decode the image")
    assert "Invalid PNG data, size 10424" in response.get_json()["error"]
    assert "DecodeImage" not in response.get_json()["error"]  # the graph's node names stay out
    metrics = app.test_client().get("/metrics").get_data(as_text=True)
    assert "webui_tf_serving_errors_total{" not in metrics
