"""Voicenter's Click2Call API for tests: a real HTTP server on a free port that speaks the
documented API (``/ForwardDialer/click2call.aspx``, GET query or POST JSON, ``code`` token,
``action=call``, ``format=json`` for JSON else XML) and answers each ERRORCODE on demand."""

from __future__ import annotations

import itertools
import json
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl, urlsplit

from tests.support.httpserver import LocalServer

PATH = "/ForwardDialer/click2call.aspx"
MESSAGES = {0: "OK", 1: "Invalid request parameters", 2: "Application error", 3: "Extension is offline",
            4: "Extension is blocked for Click2Call"}


class Click2CallApi(LocalServer):
    def __init__(self, code: str = "test-code"):
        self.code = code
        self.requests: list[dict] = []
        self.errorcode_for: dict[str, int] = {}  # target -> ERRORCODE to answer
        self.http_status = 200
        self.delay = 0.0
        self._ids = itertools.count(1)
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                parts = urlsplit(self.path)
                self._answer(parts.path, dict(parse_qsl(parts.query)), "GET")

            def do_POST(self):
                parts = urlsplit(self.path)
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    params = json.loads(raw)
                except ValueError:
                    params = {}
                self._answer(parts.path, params, "POST", self.headers.get("Content-Type", ""))

            def _answer(self, path, params, method, ctype=""):
                api.requests.append({"method": method, "path": path, "params": params, "content_type": ctype})
                if api.delay:
                    time.sleep(api.delay)
                if path != PATH:
                    return self._send(404, b"not found", "text/plain")
                if api.http_status != 200:
                    return self._send(api.http_status, b"<html>error</html>", "text/html")
                code = 0
                if params.get("code") != api.code or params.get("action") != "call" or not params.get("phone") \
                        or not params.get("target"):
                    code = 1
                code = api.errorcode_for.get(str(params.get("target")), code)
                answer = {"ERRORCODE": code, "ERRORMESSAGE": MESSAGES.get(code, "Unknown error"),
                          "CALLID": f"2024060110{next(api._ids):06d}abc" if code == 0 else ""}
                if str(params.get("format", "")).lower() == "json":
                    return self._send(200, json.dumps(answer).encode(), "application/json")
                xml = "<Response>" + "".join(f"<{k}>{v}</{k}>" for k, v in answer.items()) + "</Response>"
                self._send(200, xml.encode(), "text/xml")

            def _send(self, status, body, ctype):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        super().__init__(Handler)
        self.url = self.origin + PATH
