"""Generate a realistic synthetic lake (10 million events by default) straight into the Parquet lake.

The model and its proportions are `services.lake_generator` (views, chat, donations with refunds,
chargebacks and fraud rings, subscriptions, gifts, boosts and requests, sponsorships, stream lifecycle
with games); files and manifests are laid out exactly as the lander writes them, so every asset,
dashboard and notebook reads the result as it is.

    uv run python benchmarks/generate_lake.py --lake /tmp/efir10m/lake            # 10M events, 35 days
    uv run python benchmarks/generate_lake.py --lake /tmp/small/lake --events 20000 --days 10

The lake folder must be empty or absent (offsets start at 0, as on a fresh broker).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipelines.landing import PARQUET_COMPRESSION  # noqa: E402
from services.lake_generator import GeneratorConfig, generate_lake  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lake", type=Path, required=True, help="lake folder to create (must be empty)")
    parser.add_argument("--events", type=int, default=GeneratorConfig.events)
    parser.add_argument("--days", type=int, default=GeneratorConfig.days)
    parser.add_argument("--start", type=date.fromisoformat, default=GeneratorConfig.start)
    parser.add_argument("--seed", type=int, default=GeneratorConfig.seed)
    parser.add_argument("--partitions", type=int, default=GeneratorConfig.kafka_partitions)
    parser.add_argument("--channels", type=int, default=None, help="default: grows with sqrt(events)")
    args = parser.parse_args(argv)
    if args.lake.exists() and any(args.lake.iterdir()):
        parser.error(f"{args.lake} is not empty; generate into a fresh folder")
    config = GeneratorConfig(
        events=args.events,
        days=args.days,
        start=args.start,
        seed=args.seed,
        kafka_partitions=args.partitions,
        compression=PARQUET_COMPRESSION,
        channels=args.channels,
    )
    print(f"generating {config.events:,} events over {config.days} days from {config.start} into {args.lake}")
    report = generate_lake(args.lake, config, echo=print)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\n{report.total:,} events in {report.seconds:.1f} s ({report.total / report.seconds:,.0f} events/s)"
    )
    print(
        f"{report.files:,} files and {report.manifests:,} manifests, {report.bytes / 2**20:,.1f} MiB on disk"
    )
    print(f"{report.channels} channels, {report.users:,} signed-in viewers; peak RSS {peak_mb:,.0f} MiB")
    print(f"dropped after the last day (late chargebacks, renewals): {report.dropped_after_window:,}")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for topic, rows in sorted(report.rows.items()):
        print(f"  {topic:<14}{rows:>12,}  {rows / report.total:6.1%}")
    for event_type, rows in sorted(report.event_types.items()):
        print(f"    {event_type:<28}{rows:>12,}")
    print(f"fraud ring donations (truth in _generator/): {report.fraud_donations}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
