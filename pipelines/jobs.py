"""The jobs the sensor and the schedule launch."""

from __future__ import annotations

import dagster as dg

from assets.donations import donations
from assets.fraud import fraud_features, fraud_model, fraud_review_queue, fraud_scores
from assets.lake import LAKE_OFFSET_CHECKS
from assets.loyalty import LOYALTY_ASSETS
from assets.recommendations import RECOMMENDATION_ASSETS
from assets.revenue import SOURCE_MART_ASSETS, streamer_revenue_daily
from assets.revenue_forecast import revenue_forecast
from assets.social import SOCIAL_ASSETS
from assets.stream_analytics import STREAM_ANALYTICS_ASSETS

DAILY_REVENUE_JOB = "daily_revenue_job"
LAKE_CHECKS_JOB = "lake_checks_job"

# Selecting the assets selects their checks too, so a blocking check stops a bad day in the same run.
daily_revenue_job = dg.define_asset_job(
    name=DAILY_REVENUE_JOB,
    selection=dg.AssetSelection.assets(*SOURCE_MART_ASSETS, streamer_revenue_daily),
    description="Rebuild one day of the money marts (donations, subscription, gift, interactive and "
    "sponsorship payments) and the streamer revenue mart from the lake.",
)

lake_checks_job = dg.define_asset_job(
    name=LAKE_CHECKS_JOB,
    selection=dg.AssetSelection.checks(*LAKE_OFFSET_CHECKS.values()),
    description="Verify every topic's landed offset ranges (runs whenever new manifests appear).",
)

DAILY_AUDIENCE_JOB = "daily_audience_job"

# Self-contained: it rebuilds the day's money and revenue marts too, because loyalty reads donations
# and stream analytics reads revenue; every mart write is idempotent, so overlapping runs agree.
daily_audience_job = dg.define_asset_job(
    name=DAILY_AUDIENCE_JOB,
    selection=dg.AssetSelection.assets(
        *SOURCE_MART_ASSETS,
        streamer_revenue_daily,
        *STREAM_ANALYTICS_ASSETS,
        *LOYALTY_ASSETS,
        *SOCIAL_ASSETS,
        *RECOMMENDATION_ASSETS,
        revenue_forecast,
    ),
    description="Rebuild one day of viewing sessions, audience, stream analytics, loyalty, the social "
    "graph and recommendations (with the money and revenue marts they read) from the lake.",
)

DAILY_FRAUD_JOB = "daily_fraud_job"
FRAUD_MODEL_JOB = "fraud_model_job"

# The model is retrained apart from the daily scoring: it reads every day of history, a day's scores
# only that day's features, so scoring a day never waits for (or changes) a training run.
daily_fraud_job = dg.define_asset_job(
    name=DAILY_FRAUD_JOB,
    selection=dg.AssetSelection.assets(donations, fraud_features, fraud_scores, fraud_review_queue),
    description="Score one day's settled donations with the current fraud model and fill its review queue.",
)

fraud_model_job = dg.define_asset_job(
    name=FRAUD_MODEL_JOB,
    selection=dg.AssetSelection.assets(fraud_model),
    description="Retrain and version the fraud model on the donation history (labels: chargebacks and "
    "moderators' review decisions).",
)
