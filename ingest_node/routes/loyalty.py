"""Loyalty on the node: a signed-in viewer's own points, rank and badges, and a channel's leaderboard,
from the export the loyalty assets write (ingest_node/loyalty_export.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from ingest_node.loyalty_export import LoyaltyBook, Standing
from ingest_node.routes.chat import UserDep

router = APIRouter(prefix="/api/v1/channels/{channel_id}/loyalty", tags=["loyalty"])


def book_of(request: Request) -> LoyaltyBook:
    book: LoyaltyBook = request.app.state.loyalty
    return book


BookDep = Annotated[LoyaltyBook, Depends(book_of)]


def _standing(s: Standing) -> dict[str, Any]:
    return {
        "points": s.points,
        "rank": s.rank,
        "badges": list(s.badges),
        "position": s.position,
        "as_of": s.as_of.isoformat() if s.as_of else None,
    }


@router.get("/me")
def my_standing(channel_id: str, user: UserDep, book: BookDep) -> dict[str, Any]:
    """The caller's own balance on the channel (chat token as `Authorization: Bearer`)."""
    return {
        "channel_id": channel_id,
        "user_id": user.user_id,
        **_standing(book.standing(channel_id, user.user_id)),
    }


@router.get("/leaderboard")
def leaderboard(
    channel_id: str, book: BookDep, limit: Annotated[int, Query(ge=1, le=100)] = 10
) -> dict[str, Any]:
    """The channel's top viewers, public like Twitch's and StreamElements' leaderboards."""
    return {
        "channel_id": channel_id,
        "entries": [{"user_id": user, **_standing(s)} for user, s in book.leaderboard(channel_id, limit)],
    }
