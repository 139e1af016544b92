"""Bodies past the server's limit, chunked or not, and broken framing: 4xx in JSON, like every
other error, from the real `python -m webui` (waitress refuses these before Flask sees them).
"""

from __future__ import annotations

import json
import socket

import pytest

from tests.support.servers import free_port, local_webui

pytestmark = pytest.mark.integration

OVER_THE_LIMIT = 3 * 1024 * 1024  # past waitress's max_request_body_size (2 x 1 MiB)


@pytest.fixture(scope="module")
def port():
    with local_webui(f"http://127.0.0.1:{free_port()}") as url:
        yield int(url.rsplit(":", 1)[1])


def exchange(port: int, head: str, body_parts) -> tuple[int, dict[str, str], bytes]:
    """Send a request (the server may stop reading half-way) and read its whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head.encode())
        try:
            for part in body_parts:
                sock.sendall(part)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before the end: the answer is waiting
        answer = b""
        while not complete(answer):  # not to EOF: the unread rest of the body resets it
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    header, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = header.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def complete(answer: bytes) -> bool:
    header, found, body = answer.partition(b"\r\n\r\n")
    lengths = [line.split(b":")[1] for line in header.lower().split(b"\r\n")
               if line.startswith(b"content-length:")]
    return bool(found and lengths) and len(body) >= int(lengths[0])


def chunks(size: int, piece: int = 65536):
    body = b'{"prediction_id": "p1-0", "digit": 1, "pad": "' + b"x" * size + b'"}'
    for start in range(0, len(body), piece):
        part = body[start:start + piece]
        yield b"%x\r\n%s\r\n" % (len(part), part)
    yield b"0\r\n\r\n"


@pytest.mark.parametrize("path", ["/api/feedback", "/api/predict"])
@pytest.mark.parametrize("framing", ["chunked", "content-length"])
def test_a_body_over_the_limit_is_a_json_413(port, path, framing):
    if framing == "chunked":
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        parts = chunks(OVER_THE_LIMIT)
    else:
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {OVER_THE_LIMIT}\r\n\r\n")
        parts = (b"x" * 65536 for _ in range(OVER_THE_LIMIT // 65536))
    status, headers, body = exchange(port, head, parts)
    assert status == 413 and headers["content-type"] == "application/json", body[:200]
    assert "larger than 1048576 bytes" in json.loads(body)["error"]


def test_broken_chunked_framing_is_a_json_400(port):
    head = (f"POST /api/feedback HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    status, headers, body = exchange(port, head, [b"zz\r\n{}\r\n0\r\n\r\n"])
    assert status == 400 and headers["content-type"] == "application/json", body[:200]
    assert json.loads(body)["error"].startswith("Bad Request")
