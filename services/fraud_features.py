"""Fraud features of each settled donation, computed only from what was known before (or at) it.

Pure functions over Polars frames, so the `fraud_features` asset, the evaluation script, the notebook and
the tests share one definition. Input is two frames (see `DONATION_COLUMNS`, `REVERSAL_COLUMNS`): the
settled donations of the day plus a lookback of history, and every refund and chargeback the lake holds.
A donation's features never look at a later event, so a model trained on them scores new donations the
way it was evaluated. The donor is the account (`user_id`) or, for anonymous donors, the card.

Velocity counts include the donation itself (as the edge's rules do), so a first donation counts 1.
The edge's card-testing rules are replayed here too (`rules_flag`): the rules-only baseline the model
must beat, and a reason the review queue shows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

from services.events import DonationChargedBack, DonationProcessed, DonationRefunded, Envelope
from services.fx import FxTable, MissingRate
from services.money import Currency, Money

#: Columns the donations frame must have (types as the lake holds them; `gross_rub_minor` is the RUB
#: value at the settlement-date rate, as in the `donations` mart).
DONATION_COLUMNS: dict[str, type[pl.DataType] | pl.DataType] = {
    "donation_id": pl.String,
    "occurred_at": pl.Datetime("us", "UTC"),
    "channel_id": pl.String,
    "user_id": pl.String,
    "amount_minor": pl.Int64,
    "currency": pl.String,
    "gross_rub_minor": pl.Int64,
    "ip_hash": pl.String,
    "card_hash": pl.String,
    "device_hash": pl.String,
}
#: Columns of the reversals frame; `kind` is `charged_back` or `refunded`.
REVERSAL_COLUMNS: dict[str, type[pl.DataType] | pl.DataType] = {
    "donation_id": pl.String,
    "occurred_at": pl.Datetime("us", "UTC"),
    "kind": pl.String,
}
CHARGED_BACK = "charged_back"
REFUNDED = "refunded"
#: Lake event type -> reversal kind.
REVERSAL_KINDS = {DonationChargedBack.event_type: CHARGED_BACK, DonationRefunded.event_type: REFUNDED}

#: Local time of the audience (the platform is Russian): "3 a.m." means Moscow's night.
LOCAL_TZ = "Europe/Moscow"

#: The model's inputs, in order, with what each means (the review queue's reasons use these words).
FEATURES: dict[str, str] = {
    "log_amount_rub": "amount (log of roubles)",
    "small_amount": "small amount (card-testing size)",
    "round_amount": "round amount (multiple of 10 units)",
    "same_amount_card_1h": "same amount from this card in the last hour",
    "amount_vs_donor_median": "amount vs the donor's usual (log ratio)",
    "donor_count_10m": "donations by this donor in 10 min",
    "donor_count_1h": "donations by this donor in 1 h",
    "ip_count_10m": "donations from this IP in 10 min",
    "ip_count_1h": "donations from this IP in 1 h",
    "card_count_10m": "donations with this card in 10 min",
    "card_count_1h": "donations with this card in 1 h",
    "device_count_10m": "donations from this device in 10 min",
    "device_count_1h": "donations from this device in 1 h",
    "small_ip_count_10m": "small payments from this IP in 10 min",
    "small_card_count_10m": "small payments with this card in 10 min",
    "small_device_count_10m": "small payments from this device in 10 min",
    "edge_rule_tripped": "the edge's card-testing rule fires",
    "account_age_log_hours": "account age (log hours since first seen)",
    "donor_prior_donations": "donor's earlier donations",
    "donor_distinct_ips": "IPs this donor used",
    "donor_distinct_devices": "devices this donor used",
    "device_distinct_cards": "cards seen on this device",
    "ip_distinct_cards": "cards seen from this IP",
    "donor_prior_chargebacks": "donor's earlier chargebacks",
    "card_prior_chargebacks": "card's earlier chargebacks",
    "donor_prior_refunds": "donor's earlier refunds",
    "local_hour_sin": "time of day (sine)",
    "local_hour_cos": "time of day (cosine)",
    "night": "night time (00-06 Moscow)",
    "anonymous": "anonymous donor",
}
FEATURE_NAMES: tuple[str, ...] = tuple(FEATURES)


@dataclass(frozen=True)
class VelocityRules:
    """The edge's card-testing rules (`ingest_node.money.edge_guard`): more than `max_small` payments of
    at most `small_minor` from one IP, card or device within `window` (current one included)."""

    max_small: int = 5
    small_minor: int = 5_000
    window: timedelta = timedelta(minutes=10)


class FeatureInputError(ValueError):
    """The frames handed to `donation_features` lack columns or hold unusable values."""


def _check(
    frame: pl.DataFrame, columns: dict[str, type[pl.DataType] | pl.DataType], what: str
) -> pl.DataFrame:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise FeatureInputError(f"{what} frame lacks columns {missing}")
    try:
        return frame.select([pl.col(c).cast(t, strict=True) for c, t in columns.items()])
    except pl.exceptions.PolarsError as exc:
        raise FeatureInputError(f"{what} frame has a column of the wrong type: {exc}") from exc


def empty_donations() -> pl.DataFrame:
    return pl.DataFrame(schema=DONATION_COLUMNS)


def empty_reversals() -> pl.DataFrame:
    return pl.DataFrame(schema=REVERSAL_COLUMNS)


def _window_count(key: str, window: str, only: pl.Expr | None = None) -> pl.Expr:
    """Donations sharing `key` within `window` up to and including this one (0 when the key is unknown)."""
    ones = (pl.col("occurred_at").is_not_null() if only is None else only).cast(pl.Int64)
    counted = ones.rolling_sum_by("occurred_at", window_size=window, closed="both").over(key)
    return pl.when(pl.col(key).is_null()).then(0).otherwise(counted).cast(pl.Int64)


def _distinct_so_far(group: str, value: str) -> pl.Expr:
    """How many distinct `value`s the `group` has shown up to and including this row (rows in time order)."""
    first = (pl.col(value).is_first_distinct() & pl.col(value).is_not_null()).cast(pl.Int64)
    return first.cum_sum().over(group)


def _prior_reversals(frame: pl.DataFrame, events: pl.DataFrame, key: str, kind: str) -> pl.Series:
    """For each donation, the `kind` reversals of earlier donations with the same `key` that happened
    strictly before it."""
    hits = (
        events.filter((pl.col("kind") == kind) & pl.col(key).is_not_null())
        .sort("reversed_at")
        .with_columns(pl.int_range(1, pl.len() + 1).over(key).alias("_n"))
        .select(key, "reversed_at", "_n")
    )
    joined = (
        frame.select("_row", key, "occurred_at")
        .sort("occurred_at")
        .join_asof(
            hits,
            left_on="occurred_at",
            right_on="reversed_at",
            by=key,
            strategy="backward",
            allow_exact_matches=False,
            check_sortedness=False,
        )
        .sort("_row")
    )
    return joined["_n"].fill_null(0).cast(pl.Int64)


def donation_features(
    donations: pl.DataFrame, reversals: pl.DataFrame, rules: VelocityRules | None = None
) -> pl.DataFrame:
    """One row per donation (sorted by time, then id): its identifiers, `donor_key`, every feature of
    `FEATURE_NAMES` (Float64) and `rules_flag` (the first edge rule it trips, or null)."""
    rules = rules or VelocityRules()
    d = _check(donations, DONATION_COLUMNS, "donations")
    r = _check(reversals, REVERSAL_COLUMNS, "reversals")
    if d["donation_id"].is_null().any() or d["occurred_at"].is_null().any():
        raise FeatureInputError("every donation needs a donation_id and an occurred_at")
    if d["donation_id"].is_duplicated().any():
        raise FeatureInputError("donation_id must be unique in the donations frame")
    d = (
        d.sort("occurred_at", "donation_id")
        .with_row_index("_row")
        .with_columns(
            pl.coalesce(
                pl.lit("user:") + pl.col("user_id"),
                pl.lit("card:") + pl.col("card_hash"),
                pl.lit("donation:") + pl.col("donation_id"),
            ).alias("donor_key"),
            (pl.col("card_hash") + pl.lit("|") + pl.col("amount_minor").cast(pl.String)).alias(
                "_card_amount"
            ),
        )
    )
    small = pl.col("gross_rub_minor") <= rules.small_minor
    window = f"{int(rules.window.total_seconds())}s"
    local = pl.col("occurred_at").dt.convert_time_zone(LOCAL_TZ)
    hour = local.dt.hour().cast(pl.Float64) + local.dt.minute().cast(pl.Float64) / 60
    rub = pl.col("gross_rub_minor").cast(pl.Float64) / 100
    prior_median = (
        pl.col("gross_rub_minor")
        .cast(pl.Float64)
        .rolling_median_by("occurred_at", window_size="3650d", closed="left", min_samples=1)
        .over("donor_key")
    )
    first_seen = pl.col("occurred_at").min().over("donor_key")
    out = d.with_columns(
        rub.clip(lower_bound=0).log1p().alias("log_amount_rub"),
        small.cast(pl.Float64).alias("small_amount"),
        (pl.col("amount_minor") % 1_000 == 0).cast(pl.Float64).alias("round_amount"),
        # Same card, same amount within the hour: a tester repeating one price, or a script.
        (_window_count("_card_amount", "1h") - 1)
        .clip(lower_bound=0)
        .cast(pl.Float64)
        .alias("same_amount_card_1h"),
        pl.when(prior_median.is_null() | (prior_median <= 0))
        .then(0.0)
        .otherwise((pl.col("gross_rub_minor").cast(pl.Float64) / prior_median).log())
        .alias("amount_vs_donor_median"),
        *[
            _window_count(key, span).cast(pl.Float64).alias(f"{name}_count_{label}")
            for name, key in (
                ("donor", "donor_key"),
                ("ip", "ip_hash"),
                ("card", "card_hash"),
                ("device", "device_hash"),
            )
            for span, label in (("10m", "10m"), ("1h", "1h"))
        ],
        ((pl.col("occurred_at") - first_seen).dt.total_seconds().cast(pl.Float64) / 3600)
        .log1p()
        .alias("account_age_log_hours"),
        (pl.int_range(pl.len()).over("donor_key")).cast(pl.Float64).alias("donor_prior_donations"),
        _distinct_so_far("donor_key", "ip_hash").cast(pl.Float64).alias("donor_distinct_ips"),
        _distinct_so_far("donor_key", "device_hash").cast(pl.Float64).alias("donor_distinct_devices"),
        pl.when(pl.col("device_hash").is_null())
        .then(0)
        .otherwise(_distinct_so_far("device_hash", "card_hash"))
        .cast(pl.Float64)
        .alias("device_distinct_cards"),
        pl.when(pl.col("ip_hash").is_null())
        .then(0)
        .otherwise(_distinct_so_far("ip_hash", "card_hash"))
        .cast(pl.Float64)
        .alias("ip_distinct_cards"),
        (hour / 24 * 2 * math.pi).sin().alias("local_hour_sin"),
        (hour / 24 * 2 * math.pi).cos().alias("local_hour_cos"),
        (hour < 6).cast(pl.Float64).alias("night"),
        pl.col("user_id").is_null().cast(pl.Float64).alias("anonymous"),
        *[
            _window_count(key, window, small).alias(f"_small_{key}")
            for key in ("ip_hash", "card_hash", "device_hash")
        ],
    )
    # Chargebacks and refunds of the donor's (card's) earlier donations, known before this one.
    events = r.join(
        out.select("donation_id", "donor_key", "card_hash"), on="donation_id", how="inner"
    ).rename({"occurred_at": "reversed_at"})
    out = out.with_columns(
        _prior_reversals(out, events, "donor_key", CHARGED_BACK)
        .cast(pl.Float64)
        .alias("donor_prior_chargebacks"),
        _prior_reversals(out, events, "card_hash", CHARGED_BACK)
        .cast(pl.Float64)
        .alias("card_prior_chargebacks"),
        _prior_reversals(out, events, "donor_key", REFUNDED).cast(pl.Float64).alias("donor_prior_refunds"),
    )
    flag = pl.lit(None, dtype=pl.String)
    for key, name in reversed((("ip_hash", "ip"), ("card_hash", "card"), ("device_hash", "device"))):
        flag = (
            pl.when(small & (pl.col(f"_small_{key}") > rules.max_small))
            .then(pl.lit(f"card_testing_{name}"))
            .otherwise(flag)
        )
    out = out.with_columns(
        flag.alias("rules_flag"),
        flag.is_not_null().cast(pl.Float64).alias("edge_rule_tripped"),
        *[
            pl.when(small)
            .then(pl.col(f"_small_{key}"))
            .otherwise(0)
            .cast(pl.Float64)
            .alias(f"small_{name}_count_10m")
            for key, name in (("ip_hash", "ip"), ("card_hash", "card"), ("device_hash", "device"))
        ],
    )
    ids = [
        "donation_id",
        "occurred_at",
        "channel_id",
        "user_id",
        "donor_key",
        "amount_minor",
        "currency",
        "gross_rub_minor",
    ]
    return out.select(*ids, *FEATURE_NAMES, "rules_flag")


def chargeback_labels(
    features: pl.DataFrame, reversals: pl.DataFrame, *, before: datetime | None = None
) -> pl.Series:
    """1 for each donation that was ever charged back (as far as `reversals` knows), else 0. With `before`,
    only chargebacks that arrived strictly before that instant count: chargebacks land days or weeks after
    the donation, so a time-split evaluation must not train on ones its split could not have seen yet."""
    known = reversals.filter(pl.col("kind") == CHARGED_BACK)
    if before is not None:
        known = known.filter(pl.col("occurred_at") < before)
    charged = set(known["donation_id"].to_list())
    return features["donation_id"].is_in(list(charged)).cast(pl.Int8).alias("label")


def with_rub_value(frame: pl.DataFrame, fx: FxTable, *, on: str = "occurred_at") -> pl.DataFrame:
    """Add `gross_rub_minor`: each amount in roubles at the rate in force on its `on` date, rounded once
    by the one rule of `services.money` (so it equals the `donations` mart's value). Only distinct
    (amount, currency, day) triples are converted, which keeps this cheap on millions of rows."""
    keyed = frame.with_columns(pl.col(on).dt.date().alias("_day"))
    triples = keyed.select("amount_minor", "currency", "_day").unique()
    try:
        values = [
            fx.to_rub(Money(int(amount), Currency(cur)), day).amount_minor
            for amount, cur, day in triples.iter_rows()
        ]
    except (MissingRate, ValueError) as exc:
        raise FeatureInputError(f"cannot value a donation in roubles: {exc}") from exc
    rates = triples.with_columns(pl.Series("gross_rub_minor", values, dtype=pl.Int64))
    return keyed.join(rates, on=["amount_minor", "currency", "_day"], how="left").drop("_day")


def frames_from_events(events: Iterable[Envelope], fx: FxTable) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The donations and reversals frames of a list of envelopes (synthetic data, tests, notebooks)."""
    donations: list[dict[str, object]] = []
    reversals: list[dict[str, object]] = []
    for env in events:
        p = env.payload
        if env.event_type == DonationProcessed.event_type:
            donations.append(
                {
                    "donation_id": p["donation_id"],
                    "occurred_at": env.occurred_at,
                    "channel_id": env.channel_id,
                    "user_id": env.user_id,
                    "amount_minor": p["amount_minor"],
                    "currency": p["currency"],
                    "ip_hash": p.get("ip_hash"),
                    "card_hash": p.get("card_hash"),
                    "device_hash": p.get("device_hash"),
                }
            )
        elif env.event_type in REVERSAL_KINDS:
            reversals.append(
                {
                    "donation_id": p["donation_id"],
                    "occurred_at": env.occurred_at,
                    "kind": REVERSAL_KINDS[env.event_type],
                }
            )
    schema = {k: v for k, v in DONATION_COLUMNS.items() if k != "gross_rub_minor"}
    d = pl.DataFrame(donations, schema=schema)
    return with_rub_value(d, fx), pl.DataFrame(reversals, schema=REVERSAL_COLUMNS)
