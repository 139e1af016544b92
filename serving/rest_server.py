"""The REST port: waitress, with a bound on how long one client may take to send a request.

Waitress reads requests in its I/O loop, so a slow client holds a socket, not a thread; but
its `channel_timeout` counts only silence, and past `connection_limit` (100 by default) it
stops accepting. 100 clients trickling a byte every 5 s therefore froze the port. Here every
request must arrive whole (headers and body) within `--rest_api_receive_timeout_in_ms`, or its
connection gets a JSON 408 and is closed; and a thousand connections may be open at once, so
a crowd of slow clients cannot keep a health check out while their time runs.
"""

from __future__ import annotations

import json
import time

import waitress
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer

CONNECTION_LIMIT = 1000  # open sockets; each costs a buffer, not a thread
IDLE_TIMEOUT = 30  # seconds a connection may send nothing between requests


class _BoundedChannel(HTTPChannel):
    """An HTTP connection whose every request must arrive within `receive_timeout` seconds."""

    receive_timeout = 30.0
    request_started: float | None = None  # time.monotonic() of the request's first byte

    def received(self, data: bytes) -> bool:
        if self.request is None and data:
            self.request_started = time.monotonic()
        return super().received(data)

    def readable(self) -> bool:
        """Called by waitress's loop at least once a second: the place to look at the clock."""
        if (self.request is not None and not self.requests and not self.close_when_flushed
                and self.request_started is not None
                and time.monotonic() - self.request_started > self.receive_timeout):
            self._refuse()
            return False
        return super().readable()

    def _refuse(self) -> None:
        if not self.connected:
            self.will_close = True
            return
        body = json.dumps({"error": f"Request not received whole within "
                                    f"{self.receive_timeout:g} s "
                                    "(--rest_api_receive_timeout_in_ms)"}).encode()
        self.write_soon(b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
                        b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        self.request = None
        self.close_when_flushed = True


def create_server(app, host: str, port: int, threads: int, max_body_bytes: int,
                  receive_timeout: float):
    """A waitress server for `app` whose connections use `_BoundedChannel`."""
    sockets: dict = {}
    server = waitress.create_server(app, map=sockets, host=host, port=port, threads=threads,
                                    connection_limit=CONNECTION_LIMIT,
                                    channel_timeout=IDLE_TIMEOUT,
                                    max_request_body_size=max_body_bytes)
    channel = type("Channel", (_BoundedChannel,), {"receive_timeout": receive_timeout})
    for listener in sockets.values():
        if isinstance(listener, BaseWSGIServer):
            listener.channel_class = channel
    return server
