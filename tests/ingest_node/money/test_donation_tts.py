"""Reading a donation aloud: one channel switch (the alert settings' `tts.enabled`, also shown and set as
the donation settings' `tts_enabled`), the donor's own `tts` choice stored with the donation and carried
on its events, and the alert frame's `display.tts`, true only when the channel, the donor and the TTS
filter all allow it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from alembic import command
from websockets.sync.client import ClientConnection, connect

from ingest_node.db import alembic_config, at_head, make_engine, migrate
from ingest_node.idempotency import request_hash
from ingest_node.money.alert_settings import AlertSettings, display
from ingest_node.schemas import DonationIn
from services.chat.automod import AutoMod, AutoModConfig
from services.settings import Settings
from tests.ingest_node.live_node import WAIT_SECONDS, Node, donate
from tests.ingest_node.money.interactive_helpers import call, channel_with_owner, outbox_events

NOW = "2026-01-01 00:00:00"


# ---- the decision, unit by unit ----------------------------------------------------------------------


def _frame(**payload: Any) -> dict[str, Any]:
    body = {"donation_id": "d1", "amount_minor": 10_000, "currency": "RUB", "message": "привет", **payload}
    return {"event_type": "donation.processed", "payload": body}


def _settings(**tts: Any) -> AlertSettings:
    return AlertSettings.model_validate({"tts": {"enabled": True, **tts}})


AUTOMOD = AutoMod(AutoModConfig())


@pytest.mark.parametrize(
    ("settings", "payload", "spoken"),
    [
        (_settings(), {}, "привет"),  # events from before the choice: the donor said nothing, so yes
        (_settings(), {"tts": True}, "привет"),
        (_settings(), {"tts": False}, None),  # the donor opted out
        (AlertSettings(), {"tts": True}, None),  # the channel's switch is off by default
        (_settings(enabled=False), {"tts": True}, None),
        (AlertSettings.model_validate({"tts": {"enabled": True}, "donation": {"tts": False}}), {}, None),
        (_settings(blocked_words=["привет"]), {"tts": True}, None),  # the filter still applies
        (_settings(max_chars=10), {"tts": True, "message": "очень длинное сообщение"}, None),
        (_settings(), {"tts": True, "message": ""}, None),  # nothing to read
    ],
)
def test_display_speaks_only_when_channel_donor_and_filter_agree(
    settings: AlertSettings, payload: dict[str, Any], spoken: str | None
) -> None:
    shown = display(_frame(**payload), settings, AUTOMOD)
    assert shown is not None
    assert shown["tts"] is (spoken is not None)
    assert shown["tts_text"] == spoken


def test_opting_out_only_silences_the_alert() -> None:
    shown = display(_frame(tts=False), _settings(), AUTOMOD)
    assert shown is not None and shown["title"] == "Anonymous — 100.00 RUB" and shown["message"] == "привет"


# ---- the API and the overlay feed --------------------------------------------------------------------


@contextmanager
def _overlay_feed(node: Node, channel: str) -> Iterator[ClientConnection]:
    """The alert box's own socket: what it receives is what the page decides from."""
    with node.admin() as http:
        answer = http.post(f"/api/v1/channels/{channel}/overlay-key")
    assert answer.status_code == 201, answer.text
    url = node.url.replace("http://", "ws://") + f"/ws/overlays/{channel}?key={answer.json()['key']}"
    with connect(url, open_timeout=30) as socket:
        socket.send(json.dumps({"after": None}))
        assert json.loads(socket.recv(timeout=WAIT_SECONDS)) == {"type": "ready"}
        yield socket


def _next_alert(socket: ClientConnection) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(socket.recv(timeout=WAIT_SECONDS))
    assert frame["type"] == "alert", frame
    return frame


def _settled(node: Node, channel: str, **fields: Any) -> str:
    answer = donate(node, channel, **fields)
    assert answer.status_code == 201, answer.text
    donation_id = str(answer.json()["donation_id"])
    assert node.wait_status(donation_id, "succeeded")["status"] == "succeeded"
    return donation_id


def _donation_settings(node: Node, channel: str, **body: Any) -> httpx.Response:
    with node.admin() as http:
        return http.put(f"/api/v1/channels/{channel}/donation-settings", json=body)


@pytest.mark.db
def test_the_donors_choice_is_stored_and_carried_to_the_alert(node: Node) -> None:
    channel, owner, _ = channel_with_owner(node)
    turned_on = _donation_settings(node, channel, tts_enabled=True)
    assert turned_on.status_code == 200, turned_on.text
    assert turned_on.json()["tts_enabled"] is True
    with _overlay_feed(node, channel) as socket:
        loud = _settled(node, channel, message="всем привет")
        quiet = _settled(node, channel, message="не читайте вслух", tts=False)
        long = _settled(node, channel, message="а" * 250, tts=True)  # over the default 200 characters
        frames = {f["payload"]["donation_id"]: f for f in (_next_alert(socket) for _ in range(3))}
        assert frames[loud]["payload"]["tts"] is True
        assert frames[loud]["display"]["tts"] is True
        assert frames[loud]["display"]["tts_text"] == "всем привет"
        assert frames[quiet]["payload"]["tts"] is False
        assert frames[quiet]["display"]["tts"] is False and frames[quiet]["display"]["tts_text"] is None
        assert frames[quiet]["display"]["message"] == "не читайте вслух"  # shown, just not read aloud
        assert frames[long]["display"]["tts"] is False and frames[long]["display"]["tts_text"] is None

        # The streamer turns TTS off through the donation settings: the alert settings say off too, and
        # a donor who asked to be read aloud is not.
        off = _donation_settings(node, channel, tts_enabled=False)
        assert off.status_code == 200 and off.json()["tts_enabled"] is False
        alerts = call(node, "GET", f"/api/v1/channels/{channel}/alert-settings", owner)
        assert alerts.status_code == 200 and alerts.json()["tts"]["enabled"] is False
        muted = _settled(node, channel, message="всем привет", tts=True)
        frame = _next_alert(socket)
        assert frame["payload"]["donation_id"] == muted and frame["payload"]["tts"] is True
        assert frame["display"]["tts"] is False and frame["display"]["tts_text"] is None

    with node.client() as http:
        assert http.get(f"/api/v1/donations/{quiet}").json()["tts"] is False
        assert http.get(f"/api/v1/donations/{loud}").json()["tts"] is True
    assert node.scalar("SELECT tts FROM donations WHERE donation_id = :d", d=quiet) in (False, 0)
    created = {e["payload"]["donation_id"]: e for e in outbox_events(node, channel, "donation.created")}
    processed = {e["payload"]["donation_id"]: e for e in outbox_events(node, channel, "donation.processed")}
    assert created[quiet]["payload"]["tts"] is False and processed[quiet]["payload"]["tts"] is False
    assert created[loud]["payload"]["tts"] is True and processed[loud]["payload"]["tts"] is True


@pytest.mark.db
def test_a_retry_without_tts_replays_across_the_upgrade_and_an_opt_out_is_another_request(node: Node) -> None:
    """The Idempotency-Key's hash is over what the client sent (ingest_node/idempotency.py): a request
    written before `tts` existed hashes as it did then, so its retry replays; one that sends
    `tts: false` under the same key is another request (422). A key stored by a node that still
    hashed the parsed model with its defaults replays too."""
    channel, key = node.new_channel(), f"tts-{uuid.uuid4().hex}"
    first = donate(node, channel, key=key)  # an old client: no `tts` in the body
    assert first.status_code == 201, first.text
    stored = node.scalar("SELECT request_hash FROM idempotency_keys WHERE key = :k", k=key)
    old_body = {
        "channel_id": channel, "amount_minor": 150_000, "currency": "RUB", "message": "gg",
        "donor_name": "viewer", "payment_token": "tok_success",
    }  # fmt: skip
    assert stored == request_hash(old_body)  # no `tts: true` (nor any other default) in it
    retry = donate(node, channel, key=key)
    assert retry.status_code == 201 and retry.headers.get("Idempotent-Replayed") == "true"
    assert retry.json() == first.json()
    opted_out = donate(node, channel, key=key, tts=False)
    assert opted_out.status_code == 422 and "different request" in opted_out.json()["detail"]

    legacy = request_hash(DonationIn.model_validate(old_body).model_dump(mode="json"))
    with node.sessions() as session, session.begin():
        session.execute(
            sa.text("UPDATE idempotency_keys SET request_hash = :h WHERE key = :k"), {"h": legacy, "k": key}
        )
    across = donate(node, channel, key=key)
    assert across.status_code == 201 and across.headers.get("Idempotent-Replayed") == "true"
    assert donate(node, channel, key=key, tts=False).status_code == 422
    assert node.scalar("SELECT count(*) FROM donations WHERE channel_id = :c", c=channel) == 1


@pytest.mark.db
def test_one_switch_behind_both_endpoints(node: Node) -> None:
    channel, owner, _ = channel_with_owner(node)
    with node.client() as http:
        assert http.get(f"/api/v1/channels/{channel}/donation-settings").json()["tts_enabled"] is False
    settings = {"tts": {"enabled": True, "max_chars": 50, "blocked_words": ["казино"]}}
    saved = call(node, "PUT", f"/api/v1/channels/{channel}/alert-settings", owner, json=settings)
    assert saved.status_code == 200, saved.text
    with node.client() as http:
        assert http.get(f"/api/v1/channels/{channel}/donation-settings").json()["tts_enabled"] is True
    # A donation-settings PUT without tts_enabled leaves the switch alone...
    kept = _donation_settings(node, channel, requires_approval=False)
    assert kept.status_code == 200 and kept.json()["tts_enabled"] is True
    # ...and one with it changes only the switch, not the rest of the alert settings.
    assert _donation_settings(node, channel, tts_enabled=False).status_code == 200
    after = call(node, "GET", f"/api/v1/channels/{channel}/alert-settings", owner).json()
    assert after["tts"] == {"enabled": False, "max_chars": 50, "blocked_words": ["казино"]}
    audited = node.column(
        "SELECT action FROM audit_log WHERE entity = :e ORDER BY id", e=f"channel:{channel}"
    )
    assert audited[-2:] == ["donation.settings", "alerts.configured"]


@pytest.mark.db
@pytest.mark.parametrize("value", ["no", 0, None, "false"])
def test_tts_must_be_a_boolean(node: Node, value: Any) -> None:
    channel = node.new_channel()
    answer = donate(node, channel, tts=value)
    assert answer.status_code == 422, answer.text
    assert "tts" in answer.text
    bad = _donation_settings(node, channel, tts_enabled="off")
    assert bad.status_code == 422 and "tts_enabled" in bad.text


# ---- the migration -----------------------------------------------------------------------------------


@pytest.mark.db
def test_migration_keeps_a_streamers_off_and_defaults_donors_to_yes(
    fresh_db: str, base_settings: Settings
) -> None:
    settings = base_settings.model_copy(update={"database_url": fresh_db})
    engine = make_engine(settings)
    with engine.connect() as connection:
        for revision in ("0003_donation_rules", "0002_interactive"):
            command.upgrade(alembic_config(connection), revision)
        connection.commit()
    alert = json.dumps({"tts": {"enabled": True, "max_chars": 80, "blocked_words": []}})
    with engine.begin() as conn:
        for channel, tts_enabled in (("off", False), ("on", True)):
            conn.execute(
                sa.text("INSERT INTO channels (channel_id, name, created_at) VALUES (:c, 'C', :t)"),
                {"c": channel, "t": NOW},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO donation_rules (channel_id, limits, presets, tts_enabled, requires_approval,"
                    " donor_covers_fee, updated_at) VALUES (:c, '{}', '{}', :tts, :f, :f, :t)"
                ),
                {"c": channel, "tts": tts_enabled, "f": False, "t": NOW},
            )
            conn.execute(
                sa.text("INSERT INTO alert_settings (channel_id, settings, updated_at) VALUES (:c, :s, :t)"),
                {"c": channel, "s": alert, "t": NOW},
            )
        conn.execute(
            sa.text(
                "INSERT INTO donations (donation_id, channel_id, amount_minor, currency, message, status,"
                " created_at, updated_at) VALUES (:d, 'on', 1000, 'RUB', '', 'succeeded', :t, :t)"
            ),
            {"d": str(uuid.uuid4()), "t": NOW},
        )
    migrate(settings, engine)
    assert at_head(engine)
    with engine.begin() as conn:
        rows = conn.execute(sa.text("SELECT channel_id, settings FROM alert_settings")).all()
        stored: dict[str, str] = {str(c): str(s) for c, s in rows}
        assert json.loads(stored["off"])["tts"] == {"enabled": False, "max_chars": 80, "blocked_words": []}
        assert json.loads(stored["on"])["tts"]["enabled"] is True
        assert conn.execute(sa.text("SELECT tts FROM donations")).scalar_one() in (True, 1)
        columns = {c["name"] for c in sa.inspect(conn).get_columns("donation_rules")}
        assert "tts_enabled" not in columns and "requires_approval" in columns
    engine.dispose()
