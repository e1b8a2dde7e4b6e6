"""The `donations` mart: each day's money-moving donation events, once each, valued in roubles."""

from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa

from assets.lake import DONATIONS_TOPIC, LAKE_DONATIONS
from assets.money_marts import EVENT_ID_UNIQUE as EVENT_ID_UNIQUE
from assets.money_marts import MoneyMart, event_id_unique_check, money_mart_asset
from assets.money_marts import read_money_events as _read
from assets.money_marts import value_in_rub as _value
from services.events import DonationChargedBack, DonationProcessed, DonationRefunded
from services.fx import FxTable
from services.marts import DONATIONS_MART

PROCESSED = DonationProcessed.event_type
REVERSALS = (DonationRefunded.event_type, DonationChargedBack.event_type)
MONEY_EVENTS = (PROCESSED, *REVERSALS)

DONATIONS = MoneyMart(
    name=DONATIONS_MART,
    topic=DONATIONS_TOPIC,
    credits=(PROCESSED,),
    reversals=REVERSALS,
    extras=(
        pa.field("donation_id", pa.string(), nullable=False),
        pa.field("payment_id", pa.string()),
        pa.field("donor_name", pa.string()),
        pa.field("message", pa.string()),
    ),
)
DONATIONS_SCHEMA = DONATIONS.schema


def read_money_events(lake: Path, day: date) -> list[dict[str, Any]]:
    """The day's processed, refunded and charged-back events from the lake, one row per event_id."""
    return _read(DONATIONS, lake, day)


def value_in_rub(rows: list[dict[str, Any]], fx: FxTable) -> pa.Table:
    """The donation rows valued in roubles at their settlement date's rate, reversals negative."""
    return _value(DONATIONS, rows, fx)


donations = money_mart_asset(
    DONATIONS,
    LAKE_DONATIONS,
    "Every donation that moved money on the day (processed, refunded, charged back), each event once, "
    "with its gross in roubles at the settlement-date rate, negative for a reversal.",
)
donations_event_id_unique = event_id_unique_check(donations, DONATIONS)
