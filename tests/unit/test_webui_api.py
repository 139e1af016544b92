"""The web UI's JSON API through Flask's test client: every refusal, the shapes, the headers.

No model is needed here. "TF Serving down" is a closed loopback port and "too slow" is a
real listening socket that never answers; the happy path runs in tests/integration.
"""

from __future__ import annotations

import base64
import io
import socket
import textwrap

import pytest
from PIL import Image

from tests.support.servers import free_port
from webui import create_app


def png_bytes(image: Image.Image, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def drawing(size: int = 280, mode: str = "L") -> Image.Image:
    """A dark vertical bar on white: enough ink to pass the checks (any digit will do here)."""
    image = Image.new(mode, (size, size), "white")
    image.paste("black", (size // 2 - 10, size // 5, size // 2 + 10, 4 * size // 5))
    return image


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


@pytest.fixture
def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def silent_server_url():
    """A TCP server that takes connections (the kernel's backlog does) and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


@pytest.fixture
def app(closed_port_url):
    return create_app({"TF_SERVING_URL": closed_port_url})


@pytest.fixture
def client(app):
    return app.test_client()


class Api:
    """Small helper around the test client for the calls the tests repeat."""

    def __init__(self, client):
        self.client = client

    def predict(self, image=None, **kwargs):
        if image is not None:
            kwargs["json"] = {"image": image}
        return self.client.post("/api/predict", **kwargs)


@pytest.fixture
def api(client) -> Api:
    return Api(client)


def assert_json_error(response, status: int, words: str = "") -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"}
    assert words.lower() in body["error"].lower()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


TRUNCATED_PNG = png_bytes(drawing())[:200]
BAD_REQUESTS = [
    # id, keyword arguments for client.post, status, words in the message
    ("not json", {"data": "image=abc", "content_type": "text/plain"}, 400, "must be JSON"),
    ("invalid utf-8", {"data": b"\xff\xfe{", "content_type": "application/json"}, 400, "JSON"),
    ("json array", {"json": ["x"]}, 400, "object"),
    ("json string", {"json": "x"}, 400, "object"),
    ("missing image", {"json": {"png": "x"}}, 400, "missing"),
    ("image is null", {"json": {"image": None}}, 400, "not null"),
    ("image is a number", {"json": {"image": 3}}, 400, "not int"),
    ("image is a list", {"json": {"image": [1, 2]}}, 400, "not list"),
    ("image is empty", {"json": {"image": ""}}, 400, "empty"),
    ("not base64", {"json": {"image": "this is not base64!"}}, 400, "base64"),
    ("data url not base64", {"json": {"image": "data:image/png,abc"}}, 400, "base64"),
    ("base64 of text", {"json": {"image": b64(b"hello, world")}}, 400, "does not hold an image"),
    ("truncated png", {"json": {"image": b64(TRUNCATED_PNG)}}, 400, "could not be decoded"),
    ("side over 2048", {"json": {"image": b64(png_bytes(Image.new("L", (2049, 8))))}},
     413, "2049×8"),
    ("blank white", {"json": {"image": data_url(png_bytes(Image.new("L", (280, 280), 255)))}},
     422, "empty"),
    ("blank transparent canvas",
     {"json": {"image": data_url(png_bytes(Image.new("RGBA", (280, 280), (0, 0, 0, 0))))}},
     422, "empty"),
    ("faint smudge", {"json": {"image": b64(png_bytes(Image.new("L", (64, 64), 250)))}},
     422, "empty"),
    ("body over 1 MiB", {"json": {"image": "A" * (1024 * 1024)}}, 413, "larger than"),
]


@pytest.mark.parametrize("kwargs,status,words", [c[1:] for c in BAD_REQUESTS],
                         ids=[c[0] for c in BAD_REQUESTS])
def test_bad_input_is_a_4xx_with_a_plain_message(api, kwargs, status, words):
    assert_json_error(api.predict(**kwargs), status, words)


def test_a_chunked_body_over_the_limit_is_413_not_cut_short(client):
    # No Content-Length: Werkzeug stops reading at the limit, so the size is checked after.
    # wsgi.input_terminated is how waitress says it has de-chunked the body.
    body = io.BytesIO(b'{"image": "' + b"A" * (2 * 1024 * 1024) + b'"}')
    response = client.post("/api/predict", input_stream=body,
                           headers={"Transfer-Encoding": "chunked"},
                           environ_overrides={"wsgi.input_terminated": True})
    assert_json_error(response, 413, "larger than")


@pytest.mark.parametrize("encode", [
    pytest.param(lambda d: data_url(png_bytes(d)), id="png data url"),
    pytest.param(lambda d: b64(png_bytes(d)), id="bare base64"),
    pytest.param(lambda d: "\n".join(textwrap.wrap(b64(png_bytes(d)), 76)),
                 id="base64 wrapped over lines"),
    pytest.param(lambda d: b64(png_bytes(d, "JPEG")), id="jpeg"),
    pytest.param(lambda d: b64(png_bytes(d.convert("RGB"), "BMP")), id="bmp"),
])
def test_good_images_pass_the_checks_and_reach_the_model_service(api, encode):
    # The model service is a closed port here, so passing every check means 503.
    assert_json_error(api.predict(encode(drawing())), 503, "not reachable")


def test_transparent_canvas_with_ink_passes_the_checks(api):
    image = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    image.paste((0, 0, 0, 255), (130, 50, 150, 230))
    assert_json_error(api.predict(b64(png_bytes(image))), 503)


def test_model_service_down_is_503(api):
    assert_json_error(api.predict(data_url(png_bytes(drawing()))), 503, "not reachable")


def test_model_service_too_slow_is_504(silent_server_url):
    app = create_app({"TF_SERVING_URL": silent_server_url, "TF_SERVING_TIMEOUT": 0.3})
    response = Api(app.test_client()).predict(data_url(png_bytes(drawing())))
    assert_json_error(response, 504, "longer than 0.3 s")


def test_model_listing_is_503_when_the_model_service_is_down(client):
    assert_json_error(client.get("/api/model"), 503, "not reachable")


@pytest.mark.parametrize("method,path,status", [
    ("GET", "/api/nothing-here", 404),
    ("GET", "/api/predict", 405),
    ("PUT", "/api/predict", 405),
    ("POST", "/api/model", 405),
])
def test_api_routing_errors_are_json(client, method, path, status):
    assert_json_error(client.open(path, method=method), status)


def test_nothing_under_api_answers_html_even_for_a_bug(app, client):
    @app.get("/api/boom")
    def boom():
        raise RuntimeError("a bug")

    response = client.get("/api/boom")
    assert_json_error(response, 500, "went wrong")
    assert "a bug" not in response.get_data(as_text=True)


def test_healthz_needs_no_model_service(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_says_why_it_is_not_ready(client):
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unavailable"
    assert "not reachable" in body["reason"]


def test_metrics_count_requests_by_route(api, client):
    api.predict(data="nope")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert 'webui_http_requests_total{endpoint="api.predict",method="POST",status="400"} 1.0' \
        in text
    assert "webui_http_request_duration_seconds_bucket" in text


@pytest.mark.parametrize("path", ["/", "/api/predict", "/api/nothing", "/healthz",
                                  "/static/app.js"])
def test_security_headers_everywhere(client, path):
    headers = client.get(path).headers
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"


def test_api_answers_are_not_cached(api):
    assert api.predict(data="x").headers["Cache-Control"] == "no-store"


def test_debug_is_off_and_the_body_limit_is_set(app):
    assert app.debug is False
    assert app.config["MAX_CONTENT_LENGTH"] == 1024 * 1024
