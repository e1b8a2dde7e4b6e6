"""The viewer's donation page (`/donate/{channel}`) in a real headless Chromium against a live node and the
sandbox provider: what the donor picks and types reaches the API exactly (minor units, currency, the
"read aloud" box), the API's refusal is shown as the page's error, and a refused amount creates nothing."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.ingest_node.live_node import Node
from tests.ingest_node.money.cdp import CHROMIUM, Browser

pytestmark = [
    pytest.mark.db,
    pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="Debian's chromium is not installed"),
]

RULES = {
    "limits": {
        "RUB": {"min_minor": 10_000, "max_minor": 500_000},
        "USD": {"min_minor": 1_000, "max_minor": 50_000},
    },
    "presets": {"RUB": [10_000, 50_000, 100_000], "USD": [1_000, 2_000]},
    "donor_covers_fee": True,
}


@pytest.fixture
def browser() -> Iterator[Browser]:
    started = Browser()
    try:
        yield started
    finally:
        started.close()


def channel_with_rules(node: Node) -> str:
    channel = node.new_channel()
    with node.admin() as http:
        answer = http.put(f"/api/v1/channels/{channel}/donation-settings", json=RULES)
    assert answer.status_code == 200, answer.text
    return channel


def open_page(browser: Browser, node: Node, channel: str) -> None:
    browser.navigate(f"{node.url}/donate/{channel}")
    assert browser.wait_until("window.__efirDonateReady === true"), "the page never loaded the settings"


def js(value: str) -> str:
    return json.dumps(value)


def type_into(browser: Browser, selector: str, text: str) -> None:
    """Real keyboard input: focus the field, clear it, let Chromium insert the text (fires `input`)."""
    browser.evaluate(
        f"(e => {{ e.focus(); e.select && e.select(); }})(document.querySelector({js(selector)}))"
    )
    browser.call("Input.insertText", text=text)


def click(browser: Browser, selector: str) -> None:
    assert browser.evaluate(f"!!document.querySelector({js(selector)})"), f"no {selector} on the page"
    browser.evaluate(f"document.querySelector({js(selector)}).click()")


def choose(browser: Browser, selector: str, value: str) -> None:
    browser.evaluate(
        f"(s => {{ s.value = {js(value)}; s.dispatchEvent(new Event('change')); }})"
        f"(document.querySelector({js(selector)}))"
    )


def money(minor: int, currency: str) -> str:
    """The page's format: thousands grouped by spaces, two decimals, the currency code."""
    return f"{minor // 100:,}".replace(",", " ") + f".{minor % 100:02d} {currency}"


def text_of(browser: Browser, selector: str) -> Any:
    return browser.evaluate(f"document.querySelector({js(selector)}).textContent")


def donations_of(node: Node, channel: str) -> int:
    return int(node.scalar("SELECT count(*) FROM donations WHERE channel_id = :c", c=channel))


def test_a_preset_donation_without_read_aloud_reaches_the_api(node: Node, browser: Browser) -> None:
    channel = channel_with_rules(node)
    open_page(browser, node, channel)
    presets = browser.evaluate("[...document.querySelectorAll('#presets button')].map(b => b.textContent)")
    assert presets == ["100.00 RUB", "500.00 RUB", "1 000.00 RUB"]
    assert text_of(browser, "#limits") == "From 100.00 RUB to 5 000.00 RUB"
    assert browser.evaluate("document.querySelector('#tts').checked") is True  # on by default

    # The fee quote comes from the API and matches what it quotes directly.
    click(browser, "#presets button[data-minor='50000']")
    assert browser.evaluate("document.querySelector('#amount').value") == "500.00"
    with node.client() as http:
        quote = http.get(
            f"/api/v1/channels/{channel}/donation-quote",
            params={"amount_minor": 50_000, "currency": "RUB", "cover_fee": True},
        ).json()
    click(browser, "#cover-fee")
    assert browser.wait_until("document.querySelector('#quote').textContent.startsWith('You pay')")
    assert text_of(browser, "#quote") == (
        f"You pay {money(quote['charged_minor'], 'RUB')} (fee {money(quote['fee_minor'], 'RUB')}); "
        f"the streamer gets {money(quote['streamer_minor'], 'RUB')}"
    )
    click(browser, "#cover-fee")
    assert browser.wait_until("document.querySelector('#quote').textContent === ''")

    type_into(browser, "#message", "Привет <b>стрим</b>!")
    type_into(browser, "#name", "Маша")
    click(browser, "#tts")  # untick "read my message aloud"
    type_into(browser, "#token", "tok_success")
    click(browser, "#donate")

    assert browser.wait_until("window.__efirDonation !== null"), browser.evaluate("window.__efirError")
    donation_id = browser.evaluate("window.__efirDonation.donation_id")
    assert browser.wait_until("document.querySelector('#result').textContent.includes('Thank you')"), text_of(
        browser, "#result"
    )
    with node.client() as http:
        stored = http.get(f"/api/v1/donations/{donation_id}").json()
    assert stored["channel_id"] == channel
    assert stored["amount_minor"] == 50_000 and stored["currency"] == "RUB"
    assert stored["tts"] is False
    assert stored["message"] == "Привет <b>стрим</b>!" and stored["donor_name"] == "Маша"
    assert stored["status"] == "succeeded"
    assert donations_of(node, channel) == 1


def test_an_out_of_range_amount_shows_the_api_refusal_and_creates_nothing(
    node: Node, browser: Browser
) -> None:
    channel = channel_with_rules(node)
    open_page(browser, node, channel)
    choose(browser, "#currency", "USD")
    assert browser.wait_until(
        "document.querySelector('#limits').textContent === 'From 10.00 USD to 500.00 USD'"
    )
    presets = browser.evaluate("[...document.querySelectorAll('#presets button')].map(b => b.textContent)")
    assert presets == ["10.00 USD", "20.00 USD"]
    type_into(browser, "#amount", "500.01")  # one cent above the channel's USD maximum
    type_into(browser, "#token", "tok_success")
    click(browser, "#anonymous")
    click(browser, "#donate")

    expected = "amount_minor must be between 1000 and 50000 minor units for USD donations to this channel"
    assert browser.wait_until(f"document.querySelector('#error').textContent === {js(expected)}"), text_of(
        browser, "#error"
    )
    assert browser.evaluate("document.querySelector('#donate').disabled") is False  # the donor may fix it
    assert donations_of(node, channel) == 0

    # Not a number: refused on the page, nothing sent.
    type_into(browser, "#amount", "5e2")
    click(browser, "#donate")
    assert browser.wait_until("document.querySelector('#error').textContent.startsWith('Enter the amount')")
    assert donations_of(node, channel) == 0


def test_the_page_of_an_unknown_channel_is_a_404(node: Node) -> None:
    channel = node.new_channel()
    with node.client() as http:
        known = http.get(f"/donate/{channel}")
        unknown = http.get("/donate/no-such-channel-<x>")
    assert known.status_code == 200 and "text/html" in known.headers["content-type"]
    assert "frame-ancestors 'none'" in known.headers["content-security-policy"]
    assert unknown.status_code == 404 and "text/html" in unknown.headers["content-type"]
    assert "Channel not found" in unknown.text
    assert "<x>" not in unknown.text and "&lt;x&gt;" in unknown.text  # the id is escaped, never markup
