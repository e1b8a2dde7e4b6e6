"""The goal bar, the request queue and the top-donors widgets, and the alert settings, in a real headless
Chromium: what the API changes shows up live on the overlay's socket, user text stays text."""

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
from tests.ingest_node.money.interactive_helpers import (
    call,
    channel_with_owner,
    open_queue,
    queued_request,
    settled_donation,
)
from tests.ingest_node.money.money_helpers import post

pytestmark = [
    pytest.mark.db,
    pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="Debian's chromium is not installed"),
]


@pytest.fixture
def browser() -> Iterator[Browser]:
    started = Browser()
    try:
        yield started
    finally:
        started.close()


def overlay_url(node: Node, channel: str, widget: str, **params: str) -> str:
    with node.admin() as http:
        answer = http.post(f"/api/v1/channels/{channel}/overlay-key")
    assert answer.status_code == 201, answer.text
    key = answer.json()["key"]
    extra = "".join(f"&{k}={v}" for k, v in params.items())
    return f"{node.url}/overlays/{channel}/{widget}?key={key}{extra}"


def open_widget(browser: Browser, url: str) -> None:
    browser.navigate(url)
    assert browser.wait_until("window.__efirWidgetReady === true"), "the widget never got its state"


def text_of(browser: Browser, selector: str) -> Any:
    return browser.evaluate(f"document.querySelector({json.dumps(selector)}).textContent")


def assert_not_blank(browser: Browser) -> None:
    image = Image.open(io.BytesIO(browser.screenshot()))
    colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
    assert image.format == "PNG" and colours is not None and len(colours) > 10, "the screenshot is blank"


def test_goal_bar_fills_live_as_donations_settle(node: Node, browser: Browser) -> None:
    channel, owner, _ = channel_with_owner(node)
    goal = {"title": "Новый <b>микрофон</b>", "target_minor": 1_000_000, "currency": "RUB"}
    assert call(node, "PUT", f"/api/v1/channels/{channel}/goal", owner, json=goal).status_code == 200
    open_widget(browser, overlay_url(node, channel, "goal"))
    assert text_of(browser, "#goal .title") == "Новый <b>микрофон</b>"  # text, never markup
    assert browser.evaluate("document.querySelectorAll('#goal b').length") == 0
    assert text_of(browser, "#goal .figures") == "0.00 RUB / 10 000.00 RUB (0%)"

    settled_donation(node, channel, amount_minor=250_000)
    assert browser.wait_until("document.querySelector('#goal .fill').style.width === '25%'")
    assert text_of(browser, "#goal .figures") == "2 500.00 RUB / 10 000.00 RUB (25%)"
    assert_not_blank(browser)
    # A dropped connection gets the current state again (nothing to replay, nothing missed).
    settled_donation(node, channel, amount_minor=500_000)
    assert browser.wait_until("document.querySelector('#goal .fill').style.width === '75%'")


def test_request_queue_updates_live_and_shows_titles_as_text(node: Node, browser: Browser) -> None:
    channel, owner, _ = channel_with_owner(node)
    open_queue(node, channel, owner)
    open_widget(browser, overlay_url(node, channel, "requests"))
    assert browser.evaluate("document.querySelectorAll('#requests li').length") == 0
    cheap = queued_request(node, channel, title="<img src=x onerror=alert(1)>", amount_minor=6_000)
    dear = queued_request(node, channel, title="Сектор Газа — Лирика", amount_minor=40_000)
    assert browser.wait_until("document.querySelectorAll('#requests li').length === 2")
    items = browser.evaluate("[...document.querySelectorAll('#requests li')].map(li => li.textContent)")
    assert items == ["Сектор Газа — Лирика — fan400.00 RUB", "<img src=x onerror=alert(1)> — fan60.00 RUB"]
    assert browser.evaluate("document.querySelectorAll('#requests img').length") == 0

    assert call(node, "POST", f"/api/v1/channels/{channel}/requests/{dear}/play", owner).status_code == 200
    assert browser.wait_until("document.querySelectorAll('#requests li').length === 1")
    assert text_of(browser, "#requests .playing") == "▶ Сектор Газа — Лирика"
    assert (
        call(node, "POST", f"/api/v1/channels/{channel}/requests/{cheap}/remove", owner, json={}).status_code
        == 200
    )
    assert browser.wait_until("document.querySelectorAll('#requests li').length === 0")
    closed = {"open": False, "min_amount_minor": 5_000}
    assert (
        call(node, "PUT", f"/api/v1/channels/{channel}/requests/settings", owner, json=closed).status_code
        == 200
    )
    assert browser.wait_until(
        "document.querySelector('#requests .closed').textContent === 'Requests are closed'"
    )
    assert_not_blank(browser)


def test_top_donors_widget_shows_anonymous_donors_as_anonymous(node: Node, browser: Browser) -> None:
    channel = node.new_channel()
    open_widget(browser, overlay_url(node, channel, "top-donors", period="day"))
    settled_donation(node, channel, amount_minor=300_000, donor_name=None)
    settled_donation(node, channel, amount_minor=100_000, donor_name="Маша")
    assert browser.wait_until("document.querySelectorAll('#top-donors li').length === 2")
    items = browser.evaluate("[...document.querySelectorAll('#top-donors li')].map(li => li.textContent)")
    assert items == ["Anonymous3 000.00 RUB", "Маша1 000.00 RUB"]


def test_alert_box_applies_the_streamers_settings(node: Node, browser: Browser) -> None:
    channel, owner, _ = channel_with_owner(node)
    settings = {
        "donation": {"min_amount_minor": {"RUB": 50_000}, "template": "{name} donated {amount}: {message}"},
        "variations": [
            {"name": "big", "currency": "RUB", "min_amount_minor": 500_000, "template": "WOW {name}!"}
        ],
        "tts": {"enabled": True, "max_chars": 60, "blocked_words": ["казино"]},
    }
    saved = call(node, "PUT", f"/api/v1/channels/{channel}/alert-settings", owner, json=settings)
    assert saved.status_code == 200, saved.text
    # The chat lets t.me links through (so the donation is not held for its link); TTS still skips it.
    automod = call(node, "PUT", f"/api/v1/chat/{channel}/automod", owner, json={"link_allow": ["t.me"]})
    assert automod.status_code in (200, 204), automod.text
    browser.navigate(overlay_url(node, channel, "alerts", duration_ms="50"))
    assert browser.wait_until("window.__efirReady === true")
    # Record every utterance the page hands to the browser's speech engine.
    browser.evaluate(
        "window.__spoken = []; window.speechSynthesis.speak = (u) => window.__spoken.push(u.text)"
    )
    below = settled_donation(node, channel, amount_minor=10_000, donor_name="Мелочь")  # under the minimum
    plain = settled_donation(
        node, channel, amount_minor=60_000, donor_name="Оля {tier}", message="привет {name}"
    )
    quiet = settled_donation(  # the donor unticked "read my message aloud"
        node, channel, amount_minor=65_000, donor_name="Тихоня", message="не читайте", tts=False
    )
    linked = settled_donation(
        node, channel, amount_minor=70_000, donor_name="Ссылка", message="смотри t.me/spam тут"
    )
    blocked = settled_donation(
        node, channel, amount_minor=80_000, donor_name="Игрок", message="лучшее казино"
    )
    long = settled_donation(node, channel, amount_minor=90_000, donor_name="Длинный", message="а" * 100)
    big = settled_donation(node, channel, amount_minor=600_000, donor_name="Кит")
    assert browser.wait_until("window.__efirShown.length >= 6")
    shown = {s["ref"]: s for s in browser.evaluate("window.__efirShown")}
    assert below not in shown and len(shown) == 6
    # Substituted values stay as given: `{tier}` in a name and `{name}` in a message are not templates.
    assert shown[plain]["title"] == "Оля {tier} donated 600.00 RUB: привет {name}"
    assert shown[plain]["tts"] == "привет {name}"
    assert shown[linked]["tts"] == "смотри тут"  # the link is not spoken
    assert shown[blocked]["tts"] is None  # a blocked word: silent
    assert shown[long]["tts"] is None  # too long: silent
    assert shown[quiet]["title"] == "Тихоня donated 650.00 RUB: не читайте" and shown[quiet]["tts"] is None
    # In the order shown; the opted-out, blocked and long messages never reach the speech engine.
    assert browser.evaluate("window.__spoken") == ["привет {name}", "смотри тут", "gg"]
    assert shown[big]["title"] == "WOW Кит!" and shown[big]["variation"] == "big"


def test_widget_pages_and_feeds_need_the_overlay_key(node: Node) -> None:
    channel = node.new_channel()
    good = overlay_url(node, channel, "goal").split("key=")[1]
    with node.client() as http:
        for widget in ("goal", "top-donors", "requests"):
            assert http.get(f"/overlays/{channel}/{widget}", params={"key": "wrong"}).status_code == 403
            assert http.get(f"/overlays/{channel}/{widget}", params={"key": good}).status_code == 200
        assert http.get(f"/overlays/{channel}/nope", params={"key": good}).status_code == 404
    base = node.url.replace("http://", "ws://") + f"/ws/overlays/{channel}/widgets"
    for url in (
        f"{base}/goal?key=wrong",
        f"{base}/nope?key={good}",
        f"{base}/top-donors?key={good}&period=year",
    ):
        with pytest.raises(InvalidStatus) as refused:
            connect(url, open_timeout=30).close()
        assert refused.value.response.status_code == 403
    with connect(f"{base}/goal?key={good}", open_timeout=30) as ws:
        assert json.loads(ws.recv(timeout=30)) == {"type": "state", "widget": "goal", "state": {"goal": None}}
    assert post(node, "/api/v1/requests", {"channel_id": channel}).status_code == 422
    assert donate(node, channel, amount_minor=-5).status_code == 422
