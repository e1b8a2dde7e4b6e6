"""Issue 2's spine, end to end with real parts: HTTP donation -> sandbox settles through the signed
webhook -> outbox -> Kafka -> lander -> Parquet -> Dagster assets in-process -> Streamlit page.

The revenue is computed by hand here, from the plan's rule (85% to the streamer, half-up once, the
remainder to the platform) and the dated FX table.
"""

from __future__ import annotations

import time
from datetime import date
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from assets.donations import donations_event_id_unique
from assets.resources import LakeResource, MartsResource
from assets.revenue import (
    SOURCE_MART_ASSETS,
    revenue_gross_equals_share_plus_fee,
    revenue_gross_reconciles_with_payments,
    streamer_revenue_daily,
)
from pipelines.lander import Lander
from services.fx import FxTable
from services.lake import mart_glob, topic_glob
from services.marts import REVENUE_MART
from services.money import Currency
from tests.dashboards.signin import signed_in_app
from tests.ingest_node.live_node import Node, donate

pytestmark = [pytest.mark.slow, pytest.mark.db]


def _channel_events(lake: Path, channel: str) -> list[tuple[str, date]]:
    if not list(lake.glob("topic=donations/date=*/*.parquet")):
        return []
    return duckdb.sql(
        f"""select event_type, cast(date as date) from read_parquet('{topic_glob(lake, "donations")}',
            hive_partitioning = true) where channel_id = '{channel}'"""
    ).fetchall()


def test_a_donation_travels_from_the_api_to_the_streamer_page(
    node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel = node.new_channel()
    paid = [
        donate(node, channel, amount_minor=150_001, currency="RUB"),
        donate(node, channel, amount_minor=1_001, currency="USD"),
        donate(node, channel, amount_minor=50_000, currency="RUB", token="tok_refund"),
        donate(node, channel, amount_minor=70_000, currency="RUB", token="tok_fail"),
    ]
    assert [p.status_code for p in paid] == [201] * 4, [p.text for p in paid]
    ids = [p.json()["donation_id"] for p in paid]
    wanted = ["succeeded", "succeeded", "refunded", "failed"]
    assert [node.wait_status(i, w)["status"] for i, w in zip(ids, wanted, strict=True)] == wanted

    lake, marts = tmp_path / "lake", tmp_path / "marts"
    lander = Lander(node.settings, manual_assignment=True, lake=lake)
    lander.start()
    try:
        deadline = time.monotonic() + 60
        while sorted(t for t, _ in _channel_events(lake, channel)).count("donation.processed") < 3:
            assert time.monotonic() < deadline, _channel_events(lake, channel)
            lander.poll_once()
        while "donation.refunded" not in {t for t, _ in _channel_events(lake, channel)}:
            assert time.monotonic() < deadline, _channel_events(lake, channel)
            lander.poll_once()
    finally:
        lander.close()

    days = sorted({d for _, d in _channel_events(lake, channel)})
    resources = {"lake": LakeResource(root=str(lake)), "marts": MartsResource(root=str(marts))}
    for day in days:
        result = dg.materialize(
            [
                *SOURCE_MART_ASSETS,
                donations_event_id_unique,
                streamer_revenue_daily,
                revenue_gross_equals_share_plus_fee,
                revenue_gross_reconciles_with_payments,
            ],
            partition_key=day.isoformat(),
            resources=resources,
        )
        assert result.success

    [(gross, share, fee)] = duckdb.sql(
        f"""select sum(gross_rub_minor), sum(streamer_share_minor), sum(platform_fee_minor)
            from read_parquet('{mart_glob(marts, REVENUE_MART)}') where channel_id = '{channel}'"""
    ).fetchall()
    # By hand: 1,500.01 RUB -> 85% = 1,275.0085 -> 1,275.01 to the streamer, 225.00 to the platform.
    # 10.01 USD at the day's rate (80.1214 RUB) = 802.015214 -> 802.02 RUB -> 681.717 -> 681.72 + 120.30.
    # The refunded 500 RUB credits and then reverses 425.00 + 75.00; the declined payment moves nothing.
    assert FxTable.load().rate(Currency.USD, days[-1]) == Decimal("80.1214")
    assert (gross, share, fee) == (150_001 + 80_202, 127_501 + 68_172, 22_500 + 12_030)

    # The streamer signs in and sees their own channel (and only it).
    app = signed_in_app(monkeypatch, marts, role="streamer", channels=[channel], username="streamer")
    assert app.selectbox(key="channel").options == [channel]
    assert [m.value for m in app.metric] == ["2 302.03 RUB", "1 956.73 RUB", "345.30 RUB"]
