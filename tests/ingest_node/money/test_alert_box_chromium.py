"""The on-stream alert box in a real headless Chromium: a donation settled through the API shows up,
a reconnect (socket drop or page reload) never replays it, and a burst shows every alert once, in order.
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.ingest_node.live_node import Node, donate
from tests.ingest_node.money.cdp import CHROMIUM, Browser

pytestmark = [
    pytest.mark.db,
    pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="Debian's chromium is not installed"),
]


def overlay_key(node: Node, channel: str) -> dict[str, str]:
    with node.admin() as http:
        answer = http.post(f"/api/v1/channels/{channel}/overlay-key")
    assert answer.status_code == 201, answer.text
    body: dict[str, str] = answer.json()
    return body


@pytest.fixture
def browser() -> Iterator[Browser]:
    started = Browser()
    try:
        yield started
    finally:
        started.close()


def shown(browser: Browser) -> list[dict[str, Any]]:
    value: list[dict[str, Any]] = browser.evaluate("window.__efirShown")
    return value


def shown_refs(browser: Browser) -> list[str]:
    return [s["ref"] for s in shown(browser)]


def open_overlay(browser: Browser, url: str) -> None:
    browser.navigate(url)
    assert browser.wait_until("window.__efirReady === true"), "the overlay never connected"


def settled_donation(node: Node, channel: str, **fields: Any) -> str:
    answer = donate(node, channel, **fields)
    assert answer.status_code == 201, answer.text
    donation_id: str = answer.json()["donation_id"]
    return donation_id


def test_a_donation_shows_up_and_is_never_replayed(node: Node, browser: Browser) -> None:
    channel = node.new_channel()
    url = overlay_key(node, channel)["alerts_url"] + "&duration_ms=60000"
    open_overlay(browser, url)
    donation = settled_donation(
        node, channel, amount_minor=150_000, donor_name="Вася <b>", message="<img src=x onerror=alert(1)>"
    )
    assert browser.wait_until(f"window.__efirShown.some(s => s.ref === {json.dumps(donation)})")
    dom = browser.evaluate(
        "(() => { const b = document.getElementById('alert'); return {hidden: b.hidden, cls: b.className,"
        " title: b.querySelector('.title').textContent, message: b.querySelector('.message').textContent,"
        " imgs: document.querySelectorAll('img').length}; })()"
    )
    assert dom["hidden"] is False
    assert "amount-large" in dom["cls"] and "kind-donation" in dom["cls"]
    assert dom["title"] == "Вася <b> — 1 500.00 RUB"
    assert dom["message"] == "<img src=x onerror=alert(1)>" and dom["imgs"] == 0  # text, never markup
    png = browser.screenshot()
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size[0] > 100
    colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 10, "the screenshot is blank"

    first = shown(browser)[0]["event_id"]
    # The socket drops: the client reconnects with the last event it showed and gets nothing older.
    browser.evaluate("window.__efirSocket.close()")
    assert browser.wait_until("window.__efirConnections >= 2 && window.__efirReady === true")
    second = settled_donation(node, channel, amount_minor=5_000, donor_name="Petya")
    assert browser.wait_until("window.__efirFrames.length >= 2")
    frames = browser.evaluate("window.__efirFrames")
    assert frames.count(first) == 1, frames
    # A page reload (OBS refreshing its source) resumes from the last alert it SHOWED (localStorage):
    # the first is not replayed, the queued second is not dropped.
    open_overlay(browser, url.replace("duration_ms=60000", "duration_ms=50"))
    third = settled_donation(node, channel, amount_minor=2_000)
    assert browser.wait_until("window.__efirShown.length >= 2")
    assert shown_refs(browser) == [second, third]
    assert node.scalar("SELECT count(*) FROM overlay_alerts WHERE channel_id = :c", c=channel) == 3


def test_a_burst_of_ten_donations_shows_ten_alerts_in_order(node: Node, browser: Browser) -> None:
    channel = node.new_channel()
    open_overlay(browser, overlay_key(node, channel)["alerts_url"] + "&duration_ms=50")
    donations = {settled_donation(node, channel, amount_minor=1_000 * (i + 1)) for i in range(10)}
    assert browser.wait_until("window.__efirShown.length >= 10")
    refs = shown_refs(browser)
    assert len(refs) == 10 and set(refs) == donations
    committed = node.column(
        "SELECT event_id FROM overlay_alerts WHERE channel_id = :c ORDER BY seq", c=channel
    )
    assert [s["event_id"] for s in shown(browser)] == committed  # the order the node committed them


def test_wrong_overlay_key_gets_neither_page_nor_feed(node: Node) -> None:
    channel = node.new_channel()
    good = overlay_key(node, channel)["key"]
    with node.client() as http:
        assert http.get(f"/overlays/{channel}/alerts", params={"key": "wrong"}).status_code == 403
        assert http.get(f"/overlays/{channel}/alerts").status_code == 403
        assert http.get("/overlays/no-such-channel/alerts", params={"key": good}).status_code == 403
        assert http.get(f"/overlays/{channel}/alerts", params={"key": good}).status_code == 200
        assert http.post(f"/api/v1/channels/{channel}/overlay-key").status_code == 401
    ws_url = node.url.replace("http://", "ws://") + f"/ws/overlays/{channel}?key=wrong"
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url, open_timeout=30).close()
    assert refused.value.response.status_code == 403
    # A new key replaces the old one.
    overlay_key(node, channel)
    with node.client() as http:
        assert http.get(f"/overlays/{channel}/alerts", params={"key": good}).status_code == 403
