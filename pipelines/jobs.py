"""The jobs the sensor and the schedule launch."""

from __future__ import annotations

import dagster as dg

from assets.donations import donations
from assets.lake import lake_donations_offset_ranges_disjoint
from assets.revenue import streamer_revenue_daily

DAILY_REVENUE_JOB = "daily_revenue_job"
LAKE_CHECKS_JOB = "lake_checks_job"

# Selecting the assets selects their checks too, so a blocking check stops a bad day in the same run.
daily_revenue_job = dg.define_asset_job(
    name=DAILY_REVENUE_JOB,
    selection=dg.AssetSelection.assets(donations, streamer_revenue_daily),
    description="Rebuild one day of the donations and streamer revenue marts from the lake.",
)

lake_checks_job = dg.define_asset_job(
    name=LAKE_CHECKS_JOB,
    selection=dg.AssetSelection.checks(lake_donations_offset_ranges_disjoint),
    description="Verify the lake's landed offset ranges (runs whenever new manifests appear).",
)
