"""The node serves loyalty standings from the export the loyalty assets write (the contract in
docs/contracts.md, with the asset's own schema), reloading it when it is replaced."""

from __future__ import annotations

import os
from datetime import date

import pyarrow as pa
import pyarrow.parquet as pq

from assets.loyalty import EXPORT_SCHEMA, export_path
from tests.ingest_node.chat.chat_client import token
from tests.ingest_node.live_node import Node


def _export(node: Node, rows: list[dict[str, object]], bump: int) -> None:
    path = export_path(node.settings.marts_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=EXPORT_SCHEMA), path)
    os.utime(path, (bump, bump))  # a distinct mtime per replacement, whatever the clock's resolution


def _row(
    channel: str, user: str, points: int, rank: str, position: int, badges: list[str]
) -> dict[str, object]:
    return {
        "user_id": user,
        "channel_id": channel,
        "points": points,
        "rank": rank,
        "badges": badges,
        "position": position,
        "as_of": date(2026, 11, 27),
    }


def test_standings_from_the_export(node: Node) -> None:
    channel = node.new_channel()
    tok, user = token(node)
    with node.client() as http:
        me = http.get(f"/api/v1/channels/{channel}/loyalty/me", headers={"Authorization": f"Bearer {tok}"})
        assert me.status_code == 200
        assert (me.json()["points"], me.json()["rank"], me.json()["position"]) == (0, "newcomer", None)

        _export(
            node,
            [
                _row(channel, user, 1_250, "fan", 2, ["first_donation"]),
                _row(channel, "top-viewer", 9_000, "legend", 1, ["watched_100h", "chatter"]),
                _row("other-channel", user, 5, "newcomer", 1, []),
            ],
            bump=1_000,
        )
        me = http.get(f"/api/v1/channels/{channel}/loyalty/me", headers={"Authorization": f"Bearer {tok}"})
        assert {k: me.json()[k] for k in ("user_id", "points", "rank", "badges", "position", "as_of")} == {
            "user_id": user,
            "points": 1_250,
            "rank": "fan",
            "badges": ["first_donation"],
            "position": 2,
            "as_of": "2026-11-27",
        }
        board = http.get(f"/api/v1/channels/{channel}/loyalty/leaderboard", params={"limit": 1}).json()
        assert [(e["user_id"], e["points"]) for e in board["entries"]] == [("top-viewer", 9_000)]

        # The asset replaces the file: the node follows.
        _export(node, [_row(channel, user, 1_300, "fan", 1, ["first_donation"])], bump=2_000)
        me = http.get(f"/api/v1/channels/{channel}/loyalty/me", headers={"Authorization": f"Bearer {tok}"})
        assert me.json()["points"] == 1_300

        # A damaged export keeps the last good view instead of failing requests.
        path = export_path(node.settings.marts_root)
        path.write_bytes(b"not parquet")
        os.utime(path, (3_000, 3_000))
        me = http.get(f"/api/v1/channels/{channel}/loyalty/me", headers={"Authorization": f"Bearer {tok}"})
        assert me.status_code == 200 and me.json()["points"] == 1_300
        path.unlink()


def test_own_standing_needs_a_chat_token(node: Node) -> None:
    with node.client() as http:
        assert http.get("/api/v1/channels/any/loyalty/me").status_code == 401
        forged = http.get("/api/v1/channels/any/loyalty/me", headers={"Authorization": "Bearer forged"})
        assert forged.status_code == 401
        assert http.get("/api/v1/channels/any/loyalty/leaderboard", params={"limit": 0}).status_code == 422
