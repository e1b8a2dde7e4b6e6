"""A test double of the platform's social service, speaking its documented HTTP contract
(docs/contracts.md, "Social service"): `GET /v1/users/{id}/friends` with a Bearer service token.

A real HTTP server on a free port. `friends` says who is whose friend; users in `broken` get a 500,
users in `slow` an answer later than the node waits, users in `garbled` a body without a list.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

PREFIX, SUFFIX = "/v1/users/", "/friends"


class SocialServiceDouble:
    def __init__(self, port: int, token: str, slow_seconds: float = 2.0) -> None:
        self.token = token
        self.slow_seconds = slow_seconds
        self.friends: dict[str, list[str]] = {}
        self.broken: set[str] = set()
        self.slow: set[str] = set()
        self.garbled: set[str] = set()
        self.requests: list[tuple[str, str | None]] = []  # (path, Authorization header)
        double = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                double.requests.append((self.path, self.headers.get("Authorization")))
                if self.headers.get("Authorization") != f"Bearer {double.token}":
                    return self._answer(401, {"detail": "bad service token"})
                if not (self.path.startswith(PREFIX) and self.path.endswith(SUFFIX)):
                    return self._answer(404, {"detail": "no such route"})
                user = unquote(self.path[len(PREFIX) : -len(SUFFIX)])
                if user in double.broken:
                    return self._answer(500, {"detail": "internal error"})
                if user in double.slow:
                    time.sleep(double.slow_seconds)
                if user in double.garbled:
                    return self._answer(200, {"user_id": user, "friends": "not a list"})
                if user not in double.friends:
                    return self._answer(404, {"detail": "unknown user"})
                return self._answer(200, {"user_id": user, "friends": double.friends[user]})

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                # the node may have given up waiting (slow users)
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(raw)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> SocialServiceDouble:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
