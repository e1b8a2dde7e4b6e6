"""Fraud features computed by hand on a five-donation fixture, the edge rules replayed, and bad input."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from services.fraud_features import (
    CHARGED_BACK,
    DONATION_COLUMNS,
    FEATURE_NAMES,
    REFUNDED,
    REVERSAL_COLUMNS,
    FeatureInputError,
    VelocityRules,
    chargeback_labels,
    donation_features,
    frames_from_events,
    with_rub_value,
)
from services.fraud_patterns import labelled_donations
from services.fx import FxTable

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)  # 15:00 in Moscow


def donation(
    donation_id: str,
    at: datetime,
    user: str | None,
    ip: str | None,
    card: str | None,
    device: str | None,
    amount: int,
) -> dict[str, object]:
    return {
        "donation_id": donation_id,
        "occurred_at": at,
        "channel_id": "alpha",
        "user_id": user,
        "amount_minor": amount,
        "currency": "RUB",
        "gross_rub_minor": amount,
        "ip_hash": ip,
        "card_hash": card,
        "device_hash": device,
    }


def frames() -> tuple[pl.DataFrame, pl.DataFrame]:
    """d1..d5 as in the comments of the test below; d1 refunded at +30 min, d3 charged back at +1 h."""
    rows = [
        donation("d1", T0, "u1", "A", "C1", "D1", 10_000),
        donation("d2", T0 + timedelta(minutes=5), "u1", "B", "C1", "D1", 10_000),
        donation("d3", T0 + timedelta(minutes=7), None, "A", "C2", "D1", 1_000),
        donation("d4", T0 + timedelta(hours=2), "u1", "A", "C1", "D2", 40_000),
        donation("d5", T0 + timedelta(hours=2, minutes=1), None, "A", "C2", "D1", 1_000),
    ]
    reversals = [
        {"donation_id": "d1", "occurred_at": T0 + timedelta(minutes=30), "kind": REFUNDED},
        {"donation_id": "d3", "occurred_at": T0 + timedelta(hours=1), "kind": CHARGED_BACK},
    ]
    # Given out of order on purpose: the features sort by time themselves.
    return (
        pl.DataFrame(list(reversed(rows)), schema=DONATION_COLUMNS),
        pl.DataFrame(reversals, schema=REVERSAL_COLUMNS),
    )


def by_id(features: pl.DataFrame) -> dict[str, dict[str, object]]:
    return {str(r["donation_id"]): r for r in features.to_dicts()}


def test_features_match_hand_computation() -> None:
    f = donation_features(*frames())
    assert f["donation_id"].to_list() == ["d1", "d2", "d3", "d4", "d5"]
    got = by_id(f)
    expected: dict[str, dict[str, float]] = {
        # First donation of u1: everything counts itself once, no history.
        "d1": {
            "donor_count_10m": 1, "donor_count_1h": 1, "ip_count_10m": 1, "card_count_10m": 1,
            "device_count_10m": 1, "account_age_log_hours": 0.0, "donor_prior_donations": 0,
            "donor_distinct_ips": 1, "donor_distinct_devices": 1, "device_distinct_cards": 1,
            "ip_distinct_cards": 1, "same_amount_card_1h": 0, "amount_vs_donor_median": 0.0,
            "small_amount": 0, "round_amount": 1, "anonymous": 0, "night": 0,
        },
        # u1 again 5 min later from IP B: card C1 and device D1 seen twice in 10 min, same amount.
        "d2": {
            "donor_count_10m": 2, "ip_count_10m": 1, "card_count_10m": 2, "device_count_10m": 2,
            "account_age_log_hours": math.log1p(5 / 60), "donor_prior_donations": 1,
            "donor_distinct_ips": 2, "same_amount_card_1h": 1, "amount_vs_donor_median": 0.0,
            "donor_prior_refunds": 0,  # d1's refund comes later
        },
        # An anonymous 10 ₽ with a second card on D1 from IP A: the donor is the card.
        "d3": {
            "donor_count_10m": 1, "ip_count_10m": 2, "device_count_10m": 3, "device_distinct_cards": 2,
            "ip_distinct_cards": 2, "small_amount": 1, "round_amount": 1, "anonymous": 1,
            "donor_prior_donations": 0,
        },
        # u1 two hours in, 400 ₽ on a new device: 4x the usual 100 ₽; d1's refund is known now.
        "d4": {
            "donor_count_10m": 1, "donor_count_1h": 1, "ip_count_1h": 1, "card_count_1h": 1,
            "donor_prior_donations": 2, "donor_distinct_ips": 2, "donor_distinct_devices": 2,
            "amount_vs_donor_median": math.log(4), "donor_prior_refunds": 1, "donor_prior_chargebacks": 0,
            "account_age_log_hours": math.log1p(2),
        },
        # Card C2 again after its chargeback at +1 h; the earlier same amount is over an hour old.
        "d5": {
            "donor_prior_chargebacks": 1, "card_prior_chargebacks": 1, "same_amount_card_1h": 0,
            "ip_count_10m": 2, "device_distinct_cards": 2, "donor_prior_donations": 1,
        },
    }  # fmt: skip
    for donation_id, values in expected.items():
        for name, want in values.items():
            assert got[donation_id][name] == pytest.approx(want), (donation_id, name)
    hour = 15 / 24 * 2 * math.pi
    assert got["d1"]["local_hour_sin"] == pytest.approx(math.sin(hour))
    assert got["d1"]["local_hour_cos"] == pytest.approx(math.cos(hour))
    assert got["d1"]["log_amount_rub"] == pytest.approx(math.log1p(100))
    assert [got[d]["donor_key"] for d in ("d1", "d3")] == ["user:u1", "card:C2"]
    assert set(FEATURE_NAMES) <= set(f.columns)
    assert f.select(FEATURE_NAMES).null_count().sum_horizontal().item() == 0


def test_labels_are_chargebacks_only_not_refunds() -> None:
    donations, reversals = frames()
    f = donation_features(donations, reversals)
    assert chargeback_labels(f, reversals).to_list() == [0, 0, 1, 0, 0]


def test_the_edge_rules_flag_the_sixth_small_payment_from_one_ip_within_ten_minutes() -> None:
    rows = [
        donation(f"s{i}", T0 + timedelta(minutes=i), None, "X", f"K{i}", None, 1_000) for i in range(6)
    ] + [donation("late", T0 + timedelta(minutes=30), None, "X", "K9", None, 1_000)]
    rows.append(donation("big", T0 + timedelta(minutes=6), None, "X", "K8", None, 90_000))
    f = donation_features(pl.DataFrame(rows, schema=DONATION_COLUMNS), pl.DataFrame(schema=REVERSAL_COLUMNS))
    flags = dict(zip(f["donation_id"], f["rules_flag"], strict=True))
    assert flags == {f"s{i}": None for i in range(5)} | {"s5": "card_testing_ip", "big": None, "late": None}
    by = by_id(f)
    assert [by[f"s{i}"]["small_ip_count_10m"] for i in range(6)] == [1, 2, 3, 4, 5, 6]
    assert (by["s5"]["edge_rule_tripped"], by["s4"]["edge_rule_tripped"]) == (1, 0)
    assert (by["big"]["small_ip_count_10m"], by["late"]["small_ip_count_10m"]) == (0, 1)
    # The same payments under a looser rule trip nothing.
    loose = donation_features(
        pl.DataFrame(rows, schema=DONATION_COLUMNS),
        pl.DataFrame(schema=REVERSAL_COLUMNS),
        VelocityRules(max_small=6, small_minor=5_000, window=timedelta(minutes=10)),
    )
    assert loose["rules_flag"].null_count() == len(loose)


def test_missing_columns_duplicates_and_bad_types_are_refused_clearly() -> None:
    donations, reversals = frames()
    with pytest.raises(FeatureInputError, match="lacks columns \\['card_hash'\\]"):
        donation_features(donations.drop("card_hash"), reversals)
    with pytest.raises(FeatureInputError, match="unique"):
        donation_features(pl.concat([donations, donations.head(1)]), reversals)
    with pytest.raises(FeatureInputError, match="wrong type"):
        donation_features(donations.with_columns(pl.lit("lots").alias("amount_minor")), reversals)
    with pytest.raises(FeatureInputError, match="lacks columns"):
        donation_features(donations, reversals.drop("kind"))


def test_rouble_values_follow_the_fx_table_and_an_unknown_currency_is_refused() -> None:
    fx = FxTable.load()
    at = datetime(2026, 11, 27, tzinfo=UTC)
    frame = pl.DataFrame(
        {"amount_minor": [1001, 1001], "currency": ["USD", "RUB"], "occurred_at": [at, at]},
        schema={"amount_minor": pl.Int64, "currency": pl.String, "occurred_at": pl.Datetime("us", "UTC")},
    )
    valued = with_rub_value(frame, fx)
    # 10.01 USD at 80.1214 (in force since 2026-07-01) = 802.015214 RUB -> 80202 kopecks, half-up.
    assert valued["gross_rub_minor"].to_list() == [80_202, 1_001]
    with pytest.raises(FeatureInputError, match="roubles"):
        with_rub_value(frame.with_columns(pl.lit("XYZ").alias("currency")), fx)


def test_features_of_synthetic_traffic_separate_rings_from_regulars() -> None:
    events = labelled_donations(3, ["alpha"], T0, 3, donations=400, rings=6)
    donations, reversals = frames_from_events(events, FxTable.load())
    f = donation_features(donations, reversals)
    f = f.with_columns(chargeback_labels(f, reversals))
    means = f.group_by("label").agg(pl.col("device_distinct_cards").mean()).sort("label")
    regular, fraud = means["device_distinct_cards"].to_list()
    assert fraud > 2 * regular
