"""`efir payouts`: the job run as a child process, approval from the CLI, and the payout.scheduled events
on the real broker."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from kafka import TopicPartition

from services import bus
from services.cli import main
from services.events import Envelope, PayoutScheduled
from services.payout_store import APPROVED, batch_info, publish_scheduled, read_audit, scheduled_events
from services.payouts import Period
from services.revenue import RevenueSource
from services.settings import Settings, get_settings
from tests.fixture_payouts import quiet_days, write_revenue

WEEK = Period.parse("2026-W46")


def cli(data: Path, *args: str, bootstrap: str = "127.0.0.1:1") -> tuple[int, str]:
    env = {
        "EFIR_DATA_DIR": str(data),
        "EFIR_KAFKA_BOOTSTRAP": bootstrap,
        "EFIR_MARTS_DIR": str(data / "marts"),
    }
    get_settings.cache_clear()  # the CLI reads settings once per process; each call here is a new "process"
    result = CliRunner().invoke(main, ["payouts", *args], env=env)
    get_settings.cache_clear()
    return result.exit_code, result.output


def read_payouts(settings: Settings, wanted: set[str]) -> list[Envelope]:
    """The wanted events from the payouts topic (other tests may write there too), by manual assignment."""
    consumer = bus.make_consumer(settings, None)
    try:
        parts = [TopicPartition("payouts", p) for p in range(settings.kafka_partitions)]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        found: list[Envelope] = []
        for _ in range(50):
            for records in consumer.poll(timeout_ms=200).values():
                found += [e for e in (Envelope.from_json(r.value) for r in records) if e.event_id in wanted]
            if len(found) >= len(wanted) and not consumer.poll(timeout_ms=200):
                break
        return found
    finally:
        consumer.close()


def test_run_approve_and_publish_from_the_cli(tmp_path: Path, base_settings: Settings) -> None:
    data = tmp_path / "data"
    marts = data / "marts"
    quiet_days(marts, WEEK)
    write_revenue(
        marts,
        date(2026, 11, 10),
        [("alpha", RevenueSource.DONATION, 150_000), ("beta", RevenueSource.DONATION, 100_000)],
    )
    code, output = cli(data, "run", "2026-W46")
    assert code == 0, output
    assert batch_info(marts, WEEK).status == "draft"

    # The broker is unreachable here: the batch is approved and final, publishing is left for a retry.
    code, output = cli(data, "approve", "2026-W46", "--by", "Olga")
    assert code == 1 and "not published" in output and "efir payouts publish 2026-W46" in output
    assert batch_info(marts, WEEK).status == APPROVED
    code, output = cli(data, "approve", "2026-W46", "--by", "Olga")
    assert code == 1 and "already approved" in output

    code, output = cli(data, "publish", "2026-W46", "--by", "Olga", bootstrap=base_settings.kafka_bootstrap)
    assert code == 0, output
    assert "1 payout.scheduled event(s) published" in output
    (event,) = scheduled_events(marts, WEEK)
    # Publishing again sends the very same event (same id): consumers keep one.
    assert publish_scheduled(base_settings, marts, WEEK, actor="Olga") == 1
    landed = read_payouts(base_settings, {event.event_id})
    assert [e.event_id for e in landed] == [event.event_id, event.event_id]
    payload = landed[0].typed_payload()
    assert isinstance(payload, PayoutScheduled)
    # alpha: 1,275 ₽ share, 13% = 165.75 ₽ withheld. beta's 850 ₽ is carried: no event.
    assert (
        landed[0].channel_id,
        payload.payout_id,
        payload.gross_minor,
        payload.tax_minor,
        payload.net_minor,
    ) == (
        "alpha",
        "2026-W46:alpha",
        127_500,
        16_575,
        110_925,
    )
    assert (payload.method, payload.approved_by, landed[0].topic) == ("bank_transfer", "Olga", "payouts")
    assert [a["action"] for a in read_audit(marts)] == ["built", "approved", "published", "published"]
    code, output = cli(data, "list")
    assert code == 0 and "2026-W46\tapproved published\t1 payouts\tnet 1 109.25 RUB" in output


@pytest.mark.parametrize(
    ("args", "message"), [(["run", "2026-W99"], "no such period"), (["run", "May"], "neither")]
)
def test_bad_periods_are_refused(tmp_path: Path, args: list[str], message: str) -> None:
    code, output = cli(tmp_path, *args)
    assert code == 2 and message in output


def test_a_failing_job_exits_nonzero_with_the_reason(tmp_path: Path) -> None:
    code, output = cli(tmp_path, "run", "2026-W46")  # no revenue marts at all
    assert code == 1
    assert "lacks 7 day(s) of 2026-W46" in output


def test_unknown_batch_cannot_be_approved(tmp_path: Path) -> None:
    code, output = cli(tmp_path, "approve", "2026-W46", "--by", "Olga")
    assert code == 1 and "no payout batch for 2026-W46" in output
