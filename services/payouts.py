"""Payout rules: periods, streamer profiles, balances, the 1,000 ₽ threshold and the batch lines.

A streamer's balance is a ledger, not a running total kept somewhere: everything the revenue mart has
credited them up to the end of a period (reversals already negative there) minus everything earlier
batches paid them. So a period's balance is exact whatever happened before (a late chargeback, a missed
period, a switch from weekly to monthly), and "carried over" is simply what the ledger still holds. A
balance of at least `PAYOUT_THRESHOLD_MINOR` is paid whole; a smaller or negative one carries forward.

Pure functions only: the assets read the marts and the batches, call `build_lines`, and write the result.
"""

from __future__ import annotations

import calendar
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Self

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from services.money import SETTLEMENT_CURRENCY
from services.revenue import RevenueSource
from services.tax import PayerKind, TaxStatus, TaxTables, withheld

# The plan: a balance is paid once it reaches 1,000 ₽; below that it carries over.
PAYOUT_THRESHOLD_MINOR = 100_000

PAYOUT = "payout"
CARRIED = "carried"


class Schedule(StrEnum):
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    INSTANT = "instant"  # one verified channel's balance up to a day, on request


class PayoutMethod(StrEnum):
    BANK_TRANSFER = "bank_transfer"
    YOOMONEY = "yoomoney"
    PAYPAL = "paypal"


_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_INSTANT = re.compile(r"^instant-(\d{4}-\d{2}-\d{2})-([a-z0-9][a-z0-9_-]{0,63})$")


class PeriodError(ValueError):
    """A period name that is neither an ISO week (2026-W48) nor a month (2026-11)."""


@dataclass(frozen=True, order=True, slots=True)
class Period:
    """A payout period: an ISO week (Monday to Sunday) or a calendar month, both ends inclusive; or an
    instant payout of one channel's balance up to a day (`instant-2026-11-25-alpha`)."""

    end: date
    start: date
    schedule: Schedule
    channel_id: str = ""  # instant payouts only

    @classmethod
    def parse(cls, text: str) -> Self:
        """`2026-W48` is a week, `2026-11` a month, `instant-2026-11-25-alpha` an instant payout."""
        try:
            if instant := _INSTANT.match(text):
                return cls.instant(date.fromisoformat(instant[1]), instant[2])
            if week := _WEEK.match(text):
                monday = date.fromisocalendar(int(week[1]), int(week[2]), 1)
                return cls(monday + timedelta(days=6), monday, Schedule.WEEKLY)
            if month := _MONTH.match(text):
                year, number = int(month[1]), int(month[2])
                last = calendar.monthrange(year, number)[1]
                return cls(date(year, number, last), date(year, number, 1), Schedule.MONTHLY)
        except ValueError as exc:
            raise PeriodError(f"no such period {text!r}: {exc}") from exc
        raise PeriodError(f"period {text!r} is neither a week like 2026-W48 nor a month like 2026-11")

    @classmethod
    def instant(cls, day: date, channel_id: str) -> Self:
        """A verified streamer's balance up to the end of `day`, paid now rather than at the period's end."""
        return cls(day, day, Schedule.INSTANT, channel_id)

    @classmethod
    def from_partition_key(cls, schedule: Schedule, key: str) -> Self:
        """The period a Dagster partition names (weekly: its Monday, monthly: its first day)."""
        first = date.fromisoformat(key)
        if schedule is Schedule.WEEKLY:
            year, week, _ = first.isocalendar()
            return cls.parse(f"{year}-W{week:02d}")
        return cls.parse(f"{first.year}-{first.month:02d}")

    @property
    def name(self) -> str:
        if self.schedule is Schedule.INSTANT:
            return f"instant-{self.end.isoformat()}-{self.channel_id}"
        if self.schedule is Schedule.WEEKLY:
            year, week, _ = self.start.isocalendar()
            return f"{year}-W{week:02d}"
        return f"{self.start.year}-{self.start.month:02d}"

    @property
    def partition_key(self) -> str:
        return self.start.isoformat()

    def pays(self, channel_id: str, profile: StreamerProfile) -> bool:
        """Whether this period's batch has a line for the channel: its schedule's, or the one instant."""
        if self.schedule is Schedule.INSTANT:
            return channel_id == self.channel_id
        return profile.schedule is self.schedule

    def days(self) -> list[date]:
        return [self.start + timedelta(days=n) for n in range((self.end - self.start).days + 1)]

    def __str__(self) -> str:
        return self.name


class StreamerProfile(BaseModel):
    """How a streamer is paid. The node has no profiles yet, so they come from a small YAML file."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    tax_status: TaxStatus = TaxStatus.INDIVIDUAL
    payout_method: PayoutMethod = PayoutMethod.BANK_TRANSFER
    schedule: Schedule = Schedule.WEEKLY
    verified: bool = False  # verified streamers may take instant payouts

    @field_validator("schedule")
    @classmethod
    def _regular(cls, schedule: Schedule) -> Schedule:
        # An instant payout is a request on top of a regular schedule, not a schedule of its own.
        if schedule is Schedule.INSTANT:
            raise ValueError("a streamer's schedule is weekly or monthly; instant payouts are requested")
        return schedule


DEFAULT_PROFILE = StreamerProfile()


class ProfilesError(ValueError):
    """The streamer profiles file is malformed."""


@dataclass(frozen=True)
class StreamerProfiles:
    """Profiles by channel id; a channel without one gets `DEFAULT_PROFILE`."""

    by_channel: Mapping[str, StreamerProfile]

    def of(self, channel_id: str) -> StreamerProfile:
        return self.by_channel.get(channel_id, DEFAULT_PROFILE)

    @classmethod
    def load(cls, path: Path) -> StreamerProfiles:
        """Read `channel_id: {tax_status, payout_method, schedule, verified}`; no file means no profiles."""
        if not path.exists():
            return cls({})
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ProfilesError(f"{path}: not YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ProfilesError(f"{path}: expected a mapping of channel id to profile")
        profiles = {}
        for channel, raw in data.items():
            try:
                profiles[str(channel)] = StreamerProfile.model_validate(raw or {})
            except ValidationError as exc:
                raise ProfilesError(f"{path}: profile of {channel!r} is invalid: {exc}") from exc
        return cls(profiles)


@dataclass(frozen=True, slots=True)
class Accrual:
    """Streamer shares credited to a channel from one payer kind: up to the period's end, and within it."""

    channel_id: str
    payer: PayerKind
    to_date_minor: int
    in_period_minor: int


@dataclass(frozen=True, slots=True)
class PriorPayout:
    """What an earlier batch paid a channel, by payer kind."""

    channel_id: str
    period_end: date
    gross_individuals_minor: int
    gross_companies_minor: int

    @property
    def gross_minor(self) -> int:
        return self.gross_individuals_minor + self.gross_companies_minor


@dataclass(frozen=True, slots=True)
class PayoutLine:
    """One channel in a period's batch. `balance = carried_in + period_share`, `balance = gross +
    carried_out`, `gross = tax + net`, all in RUB kopecks."""

    period: str
    schedule: str
    period_start: date
    period_end: date
    channel_id: str
    tax_status: str
    payout_method: str
    verified: bool
    status: str
    carried_in_minor: int
    period_share_minor: int
    balance_minor: int
    gross_individuals_minor: int
    gross_companies_minor: int
    gross_minor: int
    ytd_income_before_minor: int
    tax_minor: int
    net_minor: int
    carried_out_minor: int
    currency: str

    def as_row(self) -> dict[str, Any]:
        return asdict(self)


def accruals_by_payer(tables: TaxTables, shares: Iterable[tuple[str, str, int, int]]) -> list[Accrual]:
    """Fold (channel, source, to-date share, in-period share) rows into accruals per payer kind."""
    to_date: dict[tuple[str, PayerKind], int] = defaultdict(int)
    in_period: dict[tuple[str, PayerKind], int] = defaultdict(int)
    for channel, source, share_to_date, share_in_period in shares:
        key = (channel, tables.payer_by_source[RevenueSource(source)])
        to_date[key] += share_to_date
        in_period[key] += share_in_period
    return [Accrual(c, p, to_date[(c, p)], in_period[(c, p)]) for c, p in sorted(to_date)]


def build_lines(
    period: Period,
    profiles: StreamerProfiles,
    tables: TaxTables,
    accruals: Iterable[Accrual],
    prior: Iterable[PriorPayout],
    threshold_minor: int = PAYOUT_THRESHOLD_MINOR,
) -> list[PayoutLine]:
    """The batch of `period`: every channel on the period's schedule whose ledger is not empty.

    balance (per payer kind) = shares credited up to the period's end − earlier batches' payouts;
    a balance ≥ threshold is paid whole, with tax by the channel's status and, for НДФЛ, the income
    already paid this calendar year (`period_end`'s year); otherwise it carries over, negative too.
    """
    earlier = [p for p in prior if p.period_end <= period.end]
    balance: dict[tuple[str, PayerKind], int] = defaultdict(int)
    in_period: dict[str, int] = defaultdict(int)
    for accrual in accruals:
        balance[(accrual.channel_id, accrual.payer)] += accrual.to_date_minor
        in_period[accrual.channel_id] += accrual.in_period_minor
    ytd: dict[str, int] = defaultdict(int)
    for paid in earlier:
        balance[(paid.channel_id, PayerKind.INDIVIDUAL)] -= paid.gross_individuals_minor
        balance[(paid.channel_id, PayerKind.COMPANY)] -= paid.gross_companies_minor
        if paid.period_end.year == period.end.year:
            ytd[paid.channel_id] += paid.gross_minor
    lines = []
    for channel in sorted({c for c, _ in balance}):
        profile = profiles.of(channel)
        if not period.pays(channel, profile):
            continue
        by_payer = {kind: balance[(channel, kind)] for kind in PayerKind}
        total = sum(by_payer.values())
        if total == 0 and in_period[channel] == 0:
            continue
        pays = total >= threshold_minor
        gross_by_payer = by_payer if pays else dict.fromkeys(PayerKind, 0)
        gross = sum(gross_by_payer.values())
        tax = (
            withheld(
                tables,
                profile.tax_status,
                paid_on=period.end,
                gross_by_payer=gross_by_payer,
                ytd_before_minor=ytd[channel],
            )
            if pays
            else 0
        )
        lines.append(
            PayoutLine(
                period=period.name,
                schedule=period.schedule.value,
                period_start=period.start,
                period_end=period.end,
                channel_id=channel,
                tax_status=profile.tax_status.value,
                payout_method=profile.payout_method.value,
                verified=profile.verified,
                status=PAYOUT if pays else CARRIED,
                carried_in_minor=total - in_period[channel],
                period_share_minor=in_period[channel],
                balance_minor=total,
                gross_individuals_minor=gross_by_payer[PayerKind.INDIVIDUAL],
                gross_companies_minor=gross_by_payer[PayerKind.COMPANY],
                gross_minor=gross,
                ytd_income_before_minor=ytd[channel],
                tax_minor=tax,
                net_minor=gross - tax,
                carried_out_minor=total - gross,
                currency=SETTLEMENT_CURRENCY.value,
            )
        )
    return lines


def line_errors(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every way the batch's lines fail to add up (empty when they all do): gross − tax == net,
    gross == its payer parts, balance == carried in + period share == gross + carried out, tax ≥ 0."""
    errors = []
    for row in rows:
        c = row["channel_id"]
        if row["gross_minor"] - row["tax_minor"] != row["net_minor"]:
            errors.append(
                f"{c}: gross {row['gross_minor']} - tax {row['tax_minor']} != net {row['net_minor']}"
            )
        if row["gross_individuals_minor"] + row["gross_companies_minor"] != row["gross_minor"]:
            errors.append(f"{c}: payer parts do not sum to gross {row['gross_minor']}")
        if row["carried_in_minor"] + row["period_share_minor"] != row["balance_minor"]:
            errors.append(f"{c}: carried in + period share != balance {row['balance_minor']}")
        if row["gross_minor"] + row["carried_out_minor"] != row["balance_minor"]:
            errors.append(f"{c}: gross + carried out != balance {row['balance_minor']}")
        if row["tax_minor"] < 0 or (row["status"] == CARRIED and row["gross_minor"] != 0):
            errors.append(f"{c}: negative tax or a carried line that pays")
    return errors
