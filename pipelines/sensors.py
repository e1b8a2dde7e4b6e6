"""The sensor that turns newly landed lake files into mart rebuilds of the days they hold."""

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Self

import dagster as dg

from assets.lake import (
    CHAT_TOPIC,
    DONATIONS_TOPIC,
    GIFTS_TOPIC,
    INTERACTIVE_TOPIC,
    SPONSORSHIPS_TOPIC,
    STREAMS_TOPIC,
    SUBSCRIPTIONS_TOPIC,
    VIEWS_TOPIC,
)
from assets.partitions import DAILY
from assets.resources import LakeResource
from pipelines.jobs import (
    DAILY_AUDIENCE_JOB,
    DAILY_REVENUE_JOB,
    LAKE_CHECKS_JOB,
    daily_audience_job,
    daily_revenue_job,
    lake_checks_job,
)
from services.lake import MANIFESTS, Manifest

LAKE_MANIFESTS_SENSOR = "lake_manifests_sensor"
_DATE_DIR = "date="
# Topics whose new files rebuild the day's audience, stream analytics and loyalty marts.
AUDIENCE_TOPICS = (VIEWS_TOPIC, CHAT_TOPIC, STREAMS_TOPIC, SUBSCRIPTIONS_TOPIC)
# Topics whose new files rebuild only the day's money and revenue marts (subscriptions, a money topic
# too, launch the audience job, which rebuilds the money and revenue marts as well).
REVENUE_TOPICS = (DONATIONS_TOPIC, GIFTS_TOPIC, INTERACTIVE_TOPIC, SPONSORSHIPS_TOPIC)
# Every topic the sensor watches, each with the job its new days launch.
JOB_OF_TOPIC = {topic: DAILY_REVENUE_JOB for topic in REVENUE_TOPICS} | {
    topic: DAILY_AUDIENCE_JOB for topic in AUDIENCE_TOPICS
}


@dataclass(frozen=True)
class ManifestCursor:
    """The newest manifest modification time seen, and the names seen at exactly that time.

    Manifests are written once and never change, so anything newer than the mark is new; the names at
    the mark catch a manifest written in the same clock tick as the last one seen.
    """

    mtime_ns: int = -1
    names_at_mark: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def parse(cls, raw: str | None) -> Self:
        if not raw:
            return cls()
        data = json.loads(raw)
        return cls(int(data["mtime_ns"]), frozenset(data["names_at_mark"]))

    def dump(self) -> str:
        return json.dumps({"mtime_ns": self.mtime_ns, "names_at_mark": sorted(self.names_at_mark)})

    def is_new(self, name: str, mtime_ns: int) -> bool:
        return mtime_ns > self.mtime_ns or (mtime_ns == self.mtime_ns and name not in self.names_at_mark)


def new_manifests(
    lake: Path, topic: str | tuple[str, ...], cursor: ManifestCursor
) -> tuple[list[Path], ManifestCursor]:
    """Committed manifests of `topic` (or of each of several topics) not seen yet, and the cursor that
    marks them seen (one mark for all of them: names are relative to the lake, so they differ by topic)."""
    # Layout of services.lake: LAKE/_manifests/<topic>/e<epoch>/p<partition>/<first>-<last>.json; the
    # lander's hidden temporaries end in .tmp, so this glob sees committed manifests only.
    topics = (topic,) if isinstance(topic, str) else topic
    stats = [
        (path, path.stat().st_mtime_ns)
        for name in topics
        for path in (lake / MANIFESTS / name).glob("e*/p*/*.json")
    ]
    fresh = [(p, m) for p, m in stats if cursor.is_new(str(p.relative_to(lake)), m)]
    if not fresh:
        return [], cursor
    mark = max(m for _, m in fresh)
    at_mark = {str(p.relative_to(lake)) for p, m in fresh if m == mark}
    if mark == cursor.mtime_ns:
        at_mark |= cursor.names_at_mark
    return sorted(p for p, _ in fresh), ManifestCursor(mark, frozenset(at_mark))


def event_dates(manifest: Manifest) -> set[str]:
    """The event dates (hive `date=` folders) of the files a manifest committed."""
    dates = set()
    for name in manifest.files:
        for part in PurePosixPath(name).parts:
            if part.startswith(_DATE_DIR):
                dates.add(part.removeprefix(_DATE_DIR))
    return dates


@dg.sensor(
    name=LAKE_MANIFESTS_SENSOR,
    jobs=[daily_revenue_job, daily_audience_job, lake_checks_job],
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Rebuild the money and revenue marts for every event date that newly landed donation, "
    "gift, interactive or sponsorship files touch, and the audience and loyalty marts (with the money "
    "and revenue marts) for dates that view, chat, stream or subscription files touch.",
)
def lake_manifests_sensor(
    context: dg.SensorEvaluationContext, lake: LakeResource
) -> dg.SensorResult | dg.SkipReason:
    """Each new lake manifest requests a run of the days its files hold (a refund landing today for last
    week's donation lands in today's folder, so only dates named by files matter)."""
    cursor = ManifestCursor.parse(context.cursor)
    paths, advanced = new_manifests(lake.path, tuple(JOB_OF_TOPIC), cursor)
    if not paths:
        return dg.SkipReason("no new manifests in the lake")
    found = [(path, Manifest.read(path)) for path in paths]
    # The manifest is the lander's commit point and the renames follow it: a run started before them would
    # miss rows, so wait (keeping the cursor) until every committed file is in place.
    unpublished = [m for _, m in found if not all((lake.path / name).exists() for name in m.files)]
    if unpublished:
        return dg.SkipReason(f"waiting for the files of {len(unpublished)} committed manifest(s) to appear")
    manifests_by_day: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path, manifest in found:
        for day in event_dates(manifest):
            manifests_by_day[(JOB_OF_TOPIC[manifest.topic], day)].append(str(path.relative_to(lake.path)))
    run_requests = []
    for (job, day), names in sorted(manifests_by_day.items()):
        if not DAILY.has_partition_key(day):
            context.log.warning(f"lake files dated {day} fall outside the daily partitions; not scheduled")
            continue
        # The revenue job keeps its historical run key; the audience job's is prefixed to stay distinct.
        prefix = "" if job == DAILY_REVENUE_JOB else "audience:"
        run_requests.append(
            dg.RunRequest(job_name=job, partition_key=day, run_key=f"{prefix}{day}:{_digest(names)}")
        )
    all_names = [str(p.relative_to(lake.path)) for p in paths]
    run_requests.append(dg.RunRequest(job_name=LAKE_CHECKS_JOB, run_key=f"offsets:{_digest(all_names)}"))
    return dg.SensorResult(run_requests=run_requests, cursor=advanced.dump())


def _digest(names: list[str]) -> str:
    """A stable run key for a set of manifests, so a retried tick never launches the same run twice."""
    return hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()[:16]
