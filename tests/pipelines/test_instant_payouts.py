"""Instant payouts for verified streamers, by hand: paid once, subtracted by the next weekly batch,
counted in the year's income, refused with a reason when they may not be paid."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipelines.instant_payouts import pay_instantly
from pipelines.payouts import main as payouts_cli
from services.payout_store import (
    APPROVED,
    PayoutBatchError,
    batch_info,
    read_audit,
    read_batch,
    scheduled_events,
)
from services.payouts import (
    CARRIED,
    PAYOUT,
    Period,
    PeriodError,
    ProfilesError,
    Schedule,
    StreamerProfiles,
)
from services.revenue import RevenueSource
from tests.fixture_payouts import build, quiet_days, write_revenue

DON = RevenueSource.DONATION
W46 = Period.parse("2026-W46")  # Monday 2026-11-09 .. Sunday 2026-11-15


@pytest.fixture
def profiles(tmp_path: Path) -> Path:
    path = tmp_path / "streamer_profiles.yaml"
    path.write_text("alpha: {verified: true}\nbeta: {verified: false}\n")
    return path


@pytest.fixture
def marts(tmp_path: Path) -> Path:
    """alpha: 1,500 ₽ on Tuesday the 10th (1,275 ₽ share), 200 ₽ on Thursday the 12th (170 ₽);
    beta: 2,000 ₽ on the 10th."""
    root = tmp_path / "marts"
    quiet_days(root, W46)
    write_revenue(root, date(2026, 11, 10), [("alpha", DON, 150_000), ("beta", DON, 200_000)])
    write_revenue(root, date(2026, 11, 12), [("alpha", DON, 20_000)])
    return root


def test_instant_payout_then_the_weekly_batch_subtracts_it(marts: Path, profiles: Path) -> None:
    line = pay_instantly(marts, StreamerProfiles.load(profiles), "alpha", date(2026, 11, 11), by="olga")
    # 1,275.00 ₽ share to date; НДФЛ 13 % = 165.75 ₽.
    assert (line.status, line.gross_minor, line.tax_minor, line.net_minor) == (
        PAYOUT,
        127_500,
        16_575,
        110_925,
    )
    period = Period.instant(date(2026, 11, 11), "alpha")
    assert batch_info(marts, period).status == APPROVED
    assert [(a["action"], a["actor"], a["period"]) for a in read_audit(marts)] == [
        ("built", "olga", "instant-2026-11-11-alpha"),
        ("approved", "olga", "instant-2026-11-11-alpha"),
    ]

    (event,) = scheduled_events(marts, period)
    assert (event.payload["payout_id"], event.payload["schedule"], event.payload["net_minor"]) == (
        "instant-2026-11-11-alpha:alpha",
        "instant",
        110_925,
    )

    assert build(marts, profiles, W46).success
    rows = {r["channel_id"]: r for r in read_batch(marts, W46).to_pylist()}
    # alpha: 1,445 ₽ of shares by Sunday − 1,275 ₽ paid instantly = 170 ₽, under the threshold: carried.
    alpha = rows["alpha"]
    assert (alpha["status"], alpha["balance_minor"], alpha["gross_minor"], alpha["carried_out_minor"]) == (
        CARRIED,
        17_000,
        0,
        17_000,
    )
    assert alpha["ytd_income_before_minor"] == 127_500  # the instant payout counts in the year's income
    assert rows["beta"]["gross_minor"] == 170_000  # beta is untouched: paid by the batch


def test_refusals_pay_nobody(marts: Path, profiles: Path, tmp_path: Path) -> None:
    loaded = StreamerProfiles.load(profiles)
    with pytest.raises(PayoutBatchError, match="beta is not verified"):
        pay_instantly(marts, loaded, "beta", date(2026, 11, 11), by="olga")
    with pytest.raises(PayoutBatchError, match=r"below the 1 000\.00 RUB payout threshold"):
        pay_instantly(marts, loaded, "alpha", date(2026, 11, 9), by="olga")  # nothing earned by Monday
    with pytest.raises(PayoutBatchError, match="lacks 1 day"):
        pay_instantly(marts, loaded, "alpha", date(2026, 11, 16), by="olga")  # that day is not in the mart
    with pytest.raises(PayoutBatchError, match="needs the name"):
        pay_instantly(marts, loaded, "alpha", date(2026, 11, 11), by=" ")
    assert not (marts / "payout_batches").exists()

    pay_instantly(marts, loaded, "alpha", date(2026, 11, 11), by="olga")
    with pytest.raises(PayoutBatchError, match="already approved"):
        pay_instantly(marts, loaded, "alpha", date(2026, 11, 11), by="olga")  # a retry pays nobody twice
    assert build(marts, profiles, W46).success
    with pytest.raises(PayoutBatchError, match="cannot build instant-2026-11-13-alpha after the later"):
        pay_instantly(marts, loaded, "alpha", date(2026, 11, 13), by="olga")  # W46 already covers the 13th


def test_cli_reports_the_payout_and_the_reason_for_a_refusal(
    marts: Path, profiles: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EFIR_DATA_DIR", str(profiles.parent))
    monkeypatch.setenv("EFIR_MARTS_DIR", str(marts))
    from services.settings import get_settings

    get_settings.cache_clear()
    try:
        runner = CliRunner()
        ok = runner.invoke(payouts_cli, ["instant", "alpha", "--by", "olga", "--day", "2026-11-11"])
        assert ok.exit_code == 0, ok.output
        assert "approved instant payout to alpha by olga: gross 1 275.00 RUB, tax 165.75 RUB" in ok.output
        refused = runner.invoke(payouts_cli, ["instant", "beta", "--by", "olga", "--day", "2026-11-11"])
        assert refused.exit_code == 1 and "beta is not verified" in refused.output
    finally:
        get_settings.cache_clear()


def test_instant_period_names_and_profiles() -> None:
    period = Period.parse("instant-2026-11-11-alpha")
    assert (period.schedule, period.end, period.channel_id, period.name) == (
        Schedule.INSTANT,
        date(2026, 11, 11),
        "alpha",
        "instant-2026-11-11-alpha",
    )
    with pytest.raises(PeriodError):
        Period.parse("instant-2026-13-11-alpha")


def test_instant_is_not_a_schedule_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "profiles.yaml"
    path.write_text("alpha: {schedule: instant}\n")
    with pytest.raises(ProfilesError, match="instant payouts are requested"):
        StreamerProfiles.load(path)


def test_efir_payouts_instant_runs_the_payout_in_a_child_process(
    marts: Path, profiles: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.cli import main as efir
    from services.settings import get_settings

    monkeypatch.setenv("EFIR_DATA_DIR", str(profiles.parent))
    monkeypatch.setenv("EFIR_MARTS_DIR", str(marts))
    get_settings.cache_clear()
    try:
        args = ["payouts", "instant", "alpha", "--by", "olga", "--day", "2026-11-11", "--no-publish"]
        ok = CliRunner().invoke(efir, args)
        assert ok.exit_code == 0, ok.output
        assert "instant-2026-11-11-alpha: approved instant payout to alpha by olga" in ok.output
        again = CliRunner().invoke(efir, args)
        assert again.exit_code == 1 and "already approved" in again.output  # nobody is paid twice
    finally:
        get_settings.cache_clear()
