"""A webhook receiver on 127.0.0.1 for the notification tests: it records every POST,
and can answer the first few with an error to exercise the retries."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Webhook:
    """``url`` takes JSON POSTs; ``bodies`` holds them in order of arrival."""

    def __init__(
        self, fail_first: int = 0, status: int = 500, *, path: str = "/hooks/T0/secret-token"
    ) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.attempts = 0
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server hook's name
                data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hook.attempts += 1
                if hook.attempts <= fail_first:
                    self.send_response(status)
                else:
                    hook.bodies.append(json.loads(data))
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}{path}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Webhook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
