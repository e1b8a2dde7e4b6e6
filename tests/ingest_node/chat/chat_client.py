"""Real WebSocket clients (the `websockets` package) against a live node, and small helpers."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from websockets.sync.client import ClientConnection, connect

from tests.ingest_node.live_node import WAIT_SECONDS, Node


def token(node: Node, user_id: str | None = None, name: str | None = None, **kw: Any) -> tuple[str, str]:
    user_id = user_id or f"u{uuid.uuid4().hex[:10]}"
    with node.admin() as http:
        answer = http.post(
            "/api/v1/chat/tokens", json={"user_id": user_id, "display_name": name or user_id, **kw}
        )
    assert answer.status_code == 201, answer.text
    return answer.json()["token"], user_id


def set_role(node: Node, channel_id: str, user_id: str, role: str, sub_tier: int = 0) -> None:
    with node.admin() as http:
        answer = http.put(
            f"/api/v1/chat/{channel_id}/roles/{user_id}", json={"role": role, "sub_tier": sub_tier}
        )
    assert answer.status_code == 200, answer.text


class Client:
    """One chat socket; `frames` keeps everything received, `wait` reads until a frame matches."""

    def __init__(
        self, node: Node, channel_id: str, tok: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        url = node.url.replace("http", "ws") + f"/ws/chat/{channel_id}" + (f"?token={tok}" if tok else "")
        self.ws: ClientConnection = connect(
            url, open_timeout=WAIT_SECONDS, max_size=2**24, additional_headers=headers
        ).__enter__()
        self.frames: list[dict[str, Any]] = []
        self.hello = self.wait(lambda f: f["type"] == "hello")
        self.history = self.wait(lambda f: f["type"] == "history")["messages"]

    def send(self, text: str, **extra: Any) -> None:
        self.ws.send(json.dumps({"type": "send", "text": text, **extra}))

    def wait(self, match: Callable[[dict[str, Any]], bool], timeout: float = WAIT_SECONDS) -> dict[str, Any]:
        for frame in self.frames:
            if match(frame):
                self.frames.remove(frame)
                return frame
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching frame; got {self.frames[-10:]}")
            received: dict[str, Any] = json.loads(self.ws.recv(timeout=left))
            if match(received):
                return received
            self.frames.append(received)

    def sticker(self, sticker: object) -> None:
        self.ws.send(json.dumps({"type": "sticker", "sticker": sticker}))

    def message(self, text: str) -> dict[str, Any]:
        return self.wait(lambda f: f["type"] == "message" and f["text"] == text)

    def error(self, code: str | None = None) -> dict[str, Any]:
        return self.wait(lambda f: f["type"] == "error" and (code is None or f["code"] == code))

    def ping(self) -> None:
        """A round trip: every frame the node queued for us before this is now in `frames` or consumed."""
        self.ws.send(json.dumps({"type": "ping"}))
        self.wait(lambda f: f["type"] == "pong")

    def close(self) -> None:
        self.ws.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def command(node: Node, channel_id: str, tok: str, line: str) -> Any:
    with node.client(headers={"Authorization": f"Bearer {tok}"}) as http:
        return http.post(f"/api/v1/chat/{channel_id}/commands", json={"command": line})
