"""`efir sponsorships`: finance records a sponsor's paid invoice for a channel, refunds it, lists them.

Like `efir channels`, these commands call the node's admin API over HTTP (never its database), with the
admin token from EFIR_ADMIN_TOKEN or DATA_DIR/admin_token. Each write sends an Idempotency-Key made from
its own arguments, so running the same command again (say, after a network error) replays the node's
first answer instead of recording the payment twice.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import click

from services.money import MINOR_PER_MAJOR, Currency, format_minor

REPLAY_HEADER = "Idempotent-Replayed"
_AMOUNT = re.compile(r"[0-9]+(\.[0-9]+)?")  # plain digits: no sign, exponent, NaN or infinity


def parse_amount(text: str) -> int:
    """'150000.00' (or '150 000,00') of the currency's major unit -> 15000000 minor units, exactly.

    Decimal, never float: a fraction of a kopeck or cent is an error, not something to round away."""
    cleaned = text.strip().replace(" ", "").replace("\u00a0", "").replace("_", "")
    if "," in cleaned and "." not in cleaned and cleaned.count(",") == 1:
        cleaned = cleaned.replace(",", ".")  # the Russian decimal comma
    if not _AMOUNT.fullmatch(cleaned):
        raise click.BadParameter(f"{text!r} is not an amount (e.g. 150000.00)", param_hint="--amount")
    major = Decimal(cleaned)
    if major <= 0:
        raise click.BadParameter(f"{text!r}: the amount must be above zero", param_hint="--amount")
    minor = major * MINOR_PER_MAJOR
    if minor != minor.to_integral_value():
        raise click.BadParameter(
            f"{text!r} has a fraction of a minor unit (at most 2 decimal places)", param_hint="--amount"
        )
    return int(minor)


def _settled_at(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not an ISO date or time (e.g. 2026-11-30 or 2026-11-30T14:05:00+03:00)",
            param_hint="--settled-at",
        ) from None
    return (when if when.tzinfo is not None else when.replace(tzinfo=UTC)).isoformat()


def _who(by: str | None) -> str:
    if by:
        return by
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (a container without a passwd entry)
        return "cli"


def _key(kind: str, *parts: Any) -> str:
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
    return f"cli-{kind}-{digest[:48]}"


def _request(url: str | None, method: str, path: str, **kw: Any) -> tuple[Any, bool]:
    """(JSON answer, replayed?) of an admin call; a refusal becomes a ClickException with its detail."""
    from services.cli import admin_request  # imported late: services.cli imports this module

    answer = admin_request(url, method, path, **kw)
    return answer.json(), answer.headers.get(REPLAY_HEADER) == "true"


def _print(row: dict[str, Any]) -> None:
    currency = row["currency"]
    click.echo(f"Sponsorship:   {row['sponsorship_id']}")
    click.echo(f"Channel:       {row['channel_id']}")
    click.echo(f"Sponsor:       {row['sponsor_name']}")
    click.echo(f"Title:         {row['title']}")
    click.echo(f"Amount:        {format_minor(row['amount_minor'], currency)}")
    click.echo(f"To streamer:   {format_minor(row['streamer_share_minor'], currency)}")
    click.echo(f"Platform fee:  {format_minor(row['platform_fee_minor'], currency)}")
    click.echo(f"Reference:     {row['payment_reference']}")
    click.echo(f"Settled at:    {row['settled_at']}")
    click.echo(f"Status:        {row['status']}")
    if row.get("refunded_at"):
        click.echo(f"Refunded at:   {row['refunded_at']} by {row['refunded_by']}: {row['refund_reason']}")


_node_url_option = click.option(
    "--node-url", "url", help="Base URL of the node [default: from EFIR_NODE_HOST/EFIR_NODE_PORT]."
)


@click.group(short_help="Sponsored content: record a sponsor's paid invoice, refund it, list them.")
def sponsorships() -> None:
    """Sponsored-content income (90% to the streamer) through the node's admin API.

    Record a payment once the sponsor's bank transfer has arrived; `sponsorship.paid` then carries it
    into the revenue marts and payouts. A refund reverses exactly that credit.
    """


@sponsorships.command("record", short_help="Record a sponsor's paid invoice for a channel.")
@click.argument("channel")
@click.option("--sponsor", required=True, help="The sponsor (company) that paid.")
@click.option("--title", required=True, help="The integration, as on the invoice.")
@click.option(
    "--amount", required=True, help="Amount paid in major units, e.g. 150000.00 (2 decimals at most)."
)
@click.option(
    "--currency",
    type=click.Choice([c.value for c in Currency], case_sensitive=False),
    default=Currency.RUB.value,
    show_default=True,
)
@click.option("--reference", required=True, help="The invoice or bank reference (unique per channel).")
@click.option("--settled-at", help="When the bank credited it (ISO; no zone means UTC) [default: now].")
@click.option("--by", "by", help="Who records it (audit log) [default: your login name].")
@_node_url_option
def sponsorships_record(
    channel: str,
    sponsor: str,
    title: str,
    amount: str,
    currency: str,
    reference: str,
    settled_at: str | None,
    by: str | None,
    url: str | None,
) -> None:
    """Record that SPONSOR paid AMOUNT for an integration on CHANNEL."""
    body: dict[str, Any] = {
        "sponsor_name": sponsor,
        "title": title,
        "amount_minor": parse_amount(amount),
        "currency": currency.upper(),
        "payment_reference": reference,
        "recorded_by": _who(by),
    }
    if (when := _settled_at(settled_at)) is not None:
        body["settled_at"] = when
    key = _key("record", channel, body)
    row, replayed = _request(
        url, "POST", f"/api/v1/channels/{channel}/sponsorships", json=body, headers={"Idempotency-Key": key}
    )
    _print(row)
    if replayed:
        click.echo("Already recorded by an earlier identical command; nothing changed.")


@sponsorships.command("refund", short_help="Refund a paid sponsorship.")
@click.argument("sponsorship_id")
@click.option("--reason", required=True, help="Why it is refunded (kept with it and in the event).")
@click.option("--by", "by", help="Who refunds it (audit log) [default: your login name].")
@_node_url_option
def sponsorships_refund(sponsorship_id: str, reason: str, by: str | None, url: str | None) -> None:
    """Refund SPONSORSHIP_ID: the streamer's share and the platform fee are taken back exactly."""
    body = {"reason": reason, "refunded_by": _who(by)}
    key = _key("refund", sponsorship_id, body)
    row, replayed = _request(
        url,
        "POST",
        f"/api/v1/sponsorships/{sponsorship_id}/refund",
        json=body,
        headers={"Idempotency-Key": key},
    )
    _print(row)
    if replayed:
        click.echo("Already refunded by an earlier identical command; nothing changed.")


@sponsorships.command("list", short_help="List a channel's sponsorships.")
@click.argument("channel")
@_node_url_option
def sponsorships_list(channel: str, url: str | None) -> None:
    """CHANNEL's sponsorships, latest settlement first."""
    rows, _ = _request(url, "GET", f"/api/v1/channels/{channel}/sponsorships")
    if not rows:
        click.echo(f"no sponsorships for {channel}")
        return
    for row in rows:
        click.echo(
            f"{row['sponsorship_id']}  {row['settled_at'][:10]}  {row['status']:<8}  "
            f"{format_minor(row['amount_minor'], row['currency']):>20}  {row['payment_reference']}  "
            f"{row['sponsor_name']}: {row['title']}"
        )
