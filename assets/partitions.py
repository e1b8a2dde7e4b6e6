"""The time partitioning every daily asset of Efir shares, so jobs, schedules and sensors agree on keys."""

from __future__ import annotations

from datetime import date

import dagster as dg

# The lake's dates are event time in UTC; partitions use the same calendar so a partition key is a lake
# `date=` folder. end_offset=1 makes today's partition exist, so the sensor can refresh it during the day.
DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_offset=1, timezone="UTC")


def partition_day(partition_key: str) -> date:
    """The calendar day a daily partition key names."""
    return date.fromisoformat(partition_key)
