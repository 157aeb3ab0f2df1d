"""What every stand-in HTTP server of the tests is built on: the standard library's threaded
server of a handler class, on a free port of 127.0.0.1, serving in a thread of its own."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LocalServer:
    """Serves ``handler`` at ``origin`` from ``start()`` (or the start of a ``with`` block) until
    ``close()`` (or its end)."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True  # a client left hanging never holds the test up
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        # a short poll: close() waits for the loop to look up; half a second of every test by default
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread.is_alive():  # shutdown() waits for a serve_forever that never began
            self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
