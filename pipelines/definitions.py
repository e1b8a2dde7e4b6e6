"""The one Dagster code location of Efir: assets, checks, jobs, schedules, sensors and resources.

Resources come from `services.settings`, so the same definitions run on embedded defaults or against a
deployment by environment alone.
"""

from __future__ import annotations

import dagster as dg

from assets.donations import donations, donations_event_id_unique
from assets.fraud import FRAUD_ASSETS, FRAUD_CHECKS, FraudResource
from assets.lake import LAKE_OFFSET_CHECKS, LAKE_SPECS
from assets.loyalty import LOYALTY_ASSETS, LOYALTY_CHECKS
from assets.payment_marts import PAYMENT_MART_ASSETS, PAYMENT_MART_CHECKS
from assets.payouts import PAYOUT_ASSETS, PAYOUT_CHECKS, StreamerProfilesResource
from assets.recommendations import RECOMMENDATION_ASSETS, RECOMMENDATION_CHECKS
from assets.resources import LakeResource, MartsResource
from assets.revenue import (
    revenue_gross_equals_share_plus_fee,
    revenue_gross_reconciles_with_payments,
    streamer_revenue_daily,
)
from assets.revenue_forecast import revenue_forecast, revenue_forecast_horizon_complete
from assets.social import SOCIAL_ASSETS, SOCIAL_CHECKS, SocialResource
from assets.stream_analytics import STREAM_ANALYTICS_ASSETS, STREAM_ANALYTICS_CHECKS, LoyaltyRulesResource
from pipelines.jobs import (
    daily_audience_job,
    daily_fraud_job,
    daily_revenue_job,
    fraud_model_job,
    lake_checks_job,
)
from pipelines.payout_jobs import (
    monthly_payouts_job,
    monthly_payouts_schedule,
    weekly_payouts_job,
    weekly_payouts_schedule,
)
from pipelines.schedules import (
    weekly_fraud_model_schedule,
    yesterday_fraud_schedule,
    yesterday_revenue_schedule,
)
from pipelines.sensors import lake_manifests_sensor
from services.settings import get_settings

_settings = get_settings()
EXECUTORS = {"in_process": dg.in_process_executor, "multiprocess": dg.multiprocess_executor}

defs = dg.Definitions(
    assets=[
        *LAKE_SPECS.values(),
        donations,
        *PAYMENT_MART_ASSETS,
        streamer_revenue_daily,
        *PAYOUT_ASSETS,
        *STREAM_ANALYTICS_ASSETS,
        *LOYALTY_ASSETS,
        *SOCIAL_ASSETS,
        *RECOMMENDATION_ASSETS,
        revenue_forecast,
        *FRAUD_ASSETS,
    ],
    asset_checks=[
        donations_event_id_unique,
        revenue_gross_equals_share_plus_fee,
        revenue_gross_reconciles_with_payments,
        *PAYMENT_MART_CHECKS,
        *LAKE_OFFSET_CHECKS.values(),
        *PAYOUT_CHECKS,
        *STREAM_ANALYTICS_CHECKS,
        *LOYALTY_CHECKS,
        *SOCIAL_CHECKS,
        *RECOMMENDATION_CHECKS,
        revenue_forecast_horizon_complete,
        *FRAUD_CHECKS,
    ],
    jobs=[
        daily_revenue_job,
        lake_checks_job,
        weekly_payouts_job,
        monthly_payouts_job,
        daily_audience_job,
        daily_fraud_job,
        fraud_model_job,
    ],
    schedules=[
        yesterday_revenue_schedule,
        weekly_payouts_schedule,
        monthly_payouts_schedule,
        yesterday_fraud_schedule,
        weekly_fraud_model_schedule,
    ],
    sensors=[lake_manifests_sensor],
    executor=EXECUTORS[_settings.dagster_executor],
    resources={
        "lake": LakeResource.from_settings(_settings),
        "marts": MartsResource.from_settings(_settings),
        "streamer_profiles": StreamerProfilesResource.from_settings(_settings),
        "loyalty_rules": LoyaltyRulesResource.from_settings(_settings),
        "fraud": FraudResource.from_settings(_settings),
        "social": SocialResource.from_settings(_settings),
    },
)
