"""The viewer's donation page: `GET /donate/{channel_id}`, a static form over the public donations API.

The page is one static file (`ingest_node/money/donate.html`); the channel id reaches its script through
the URL, never through the HTML, so nothing a streamer or viewer typed is ever rendered by the server.
The script reads `GET /api/v1/channels/{id}/donation-settings` (presets, limits, fee option), asks
`/donation-quote` when the donor covers the fee, and POSTs `/api/v1/donations` with one Idempotency-Key
per submission (reused on retry), so a double click or a dropped connection never donates twice.
Public like the API it calls; an unknown channel answers a 404 page instead of a form that cannot work.
"""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import APIRouter, status
from fastapi.responses import HTMLResponse

from ingest_node.deps import SessionDep
from ingest_node.models import Channel

router = APIRouter(tags=["donate page"])
PAGE = (Path(__file__).resolve().parent.parent / "money" / "donate.html").read_text(encoding="utf-8")
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # a payment form is never framed (clickjacking)
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
}


def _not_found(channel_id: str) -> HTMLResponse:
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Channel not found</title></head>'
        f"<body><h1>Channel not found</h1><p>There is no channel {html.escape(channel_id)} "
        "to donate to.</p></body></html>"
    )
    return HTMLResponse(body, status_code=status.HTTP_404_NOT_FOUND, headers=HEADERS)


@router.get("/donate/{channel_id}", response_class=HTMLResponse)
def donate_page(channel_id: str, session: SessionDep) -> HTMLResponse:
    """The donation form for a channel; a 404 page for a channel that does not exist."""
    with session.begin():
        exists = session.get(Channel, channel_id) is not None
    if not exists:
        return _not_found(channel_id)
    return HTMLResponse(PAGE, headers=HEADERS)
