"""The dashboards as a user gets them: `streamlit run` served to a real headless Chromium, signed in
through the form, each page's hand-computed figures found on screen and a screenshot that is not blank; a
reload keeps the user signed in, and sign-out revokes the URL's session token."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest
from PIL import Image

from dashboards.auth import ENDED
from services.payouts import Period
from services.revenue import RevenueSource
from tests.conftest import free_port
from tests.dashboards.signin import APP, PASSWORD, add_account
from tests.fixture_payouts import build, quiet_days, write_revenue
from tests.ingest_node.money.cdp import Browser

pytestmark = pytest.mark.slow
WEEK = Period.parse("2026-W46")


@pytest.fixture
def dashboards(tmp_path: Path) -> Iterator[str]:
    """`streamlit run` over a week of revenue (alpha 1,500 ₽, beta 1,000 ₽) and its payout batch."""
    marts = tmp_path / "marts"
    quiet_days(marts, WEEK)
    write_revenue(
        marts,
        date(2026, 11, 10),
        [("alpha", RevenueSource.DONATION, 150_000), ("beta", RevenueSource.DONATION, 100_000)],
    )
    assert build(marts, tmp_path / "no-profiles.yaml", WEEK).success
    accounts = tmp_path / "accounts.json"
    add_account(accounts, "olga", "finance")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EFIR_")}
    env.update(EFIR_MARTS_DIR=str(marts), EFIR_DASHBOARD_ACCOUNTS_FILE=str(accounts))
    argv = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.headless=true"]
    argv += [f"--server.port={port}", "--browser.gatherUsageStats=false", "--server.fileWatcherType=none"]
    log = open(tmp_path / "streamlit.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{url}/_stcore/health", timeout=2).text.strip() == "ok":
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (
                tmp_path / "streamlit.log"
            ).read_text()
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def _type(browser: Browser, selector: str, text: str) -> None:
    """Focus a Streamlit input and type into it as a user would (React ignores assigned values)."""
    assert browser.wait_until(f"!!document.querySelector({selector!r})"), f"no {selector}"
    browser.evaluate(f"document.querySelector({selector!r}).focus()")
    browser.call("Input.insertText", text=text)


def _click_text(browser: Browser, tag: str, text: str) -> None:
    found = browser.wait_until(
        f"(() => {{ const el = [...document.querySelectorAll({tag!r})]"
        f".find(e => e.innerText.trim() === {text!r}); if (el) el.click(); return !!el; }})()"
    )
    assert found, f"no {tag} saying {text!r}"


def _shows(browser: Browser, text: str) -> bool:
    return bool(browser.wait_until(f"!!document.body && document.body.innerText.includes({text!r})"))


def _not_blank(png: bytes) -> None:
    image = Image.open(io.BytesIO(png)).convert("RGB")
    assert image.size[0] > 400
    colours = image.getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 50, "the screenshot is blank"


def test_sign_in_and_see_each_page_in_chromium(dashboards: str, tmp_path: Path) -> None:
    browser = Browser(wait_seconds=60)
    try:
        browser.navigate(dashboards)
        assert _shows(browser, "Efir dashboards")
        assert not browser.evaluate("document.body.innerText.includes('RUB')")  # no figures before sign-in
        _type(browser, "input[aria-label='Username']", "olga")
        _type(browser, "input[aria-label='Password']", PASSWORD)
        _click_text(browser, "button", "Sign in")

        assert _shows(browser, "Streamer revenue") and _shows(browser, "1 500.00 RUB")  # alpha, first
        streamer = browser.screenshot()
        _not_blank(streamer)
        (tmp_path / "streamer.png").write_bytes(streamer)  # kept for a failing run

        _click_text(browser, "a span", "Payouts")
        # Tax withheld is on the payouts page only (alpha's 1 275.00 RUB share is on both pages).
        assert _shows(browser, "Tax withheld") and _shows(browser, "165.75 RUB"), browser.evaluate(
            "document.body.innerText"
        )
        finance = browser.screenshot()
        _not_blank(finance)
        assert finance != streamer

        # A reload (a new Streamlit session) keeps the user signed in, on the page they were on: the page
        # switch dropped the URL's query and the app put the session token back.
        signed_in_url = browser.wait_until("location.search.includes('session=') && location.href")
        assert signed_in_url and "/finance" in signed_in_url and PASSWORD not in signed_in_url
        browser.evaluate("window.beforeReload = true; location.reload()")
        assert browser.wait_until(
            "!window.beforeReload && !!document.body && document.body.innerText.includes('Tax withheld')"
        ), browser.evaluate("document.body.innerText")
        assert _shows(browser, "165.75 RUB")

        _click_text(browser, "button", "Sign out")
        assert browser.wait_until("!!document.querySelector(\"input[aria-label='Password']\")"), (
            browser.evaluate("document.body.innerText")
        )
        assert _shows(browser, "Efir dashboards")
        assert browser.wait_until("!document.body.innerText.includes('165.75 RUB')")
        assert browser.wait_until("!location.search.includes('session=')")

        # Sign-out revoked the token: the old URL opens on the form.
        browser.navigate(signed_in_url)
        assert _shows(browser, ENDED), browser.evaluate("document.body.innerText")
        assert browser.wait_until("!!document.querySelector(\"input[aria-label='Password']\")")
        assert not browser.evaluate("document.body.innerText.includes('Tax withheld')")
    finally:
        browser.close()
