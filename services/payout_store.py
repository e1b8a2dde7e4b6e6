"""Payout batches in the marts, their approval, the finance audit log and the `payout.scheduled` events.

Layout (beside the daily marts): `MARTS/payout_batches/period=<P>/batch.parquet` and `batch.csv` (the same
lines, the CSV for the bank's import), `approval.json` once finance approves, `published.json` once the
events are acknowledged; `MARTS/payout_audit/audit.csv` is the append-only log of every step.

A batch is a draft until `approval.json` exists. A draft may be rebuilt; an approved batch is final:
rebuilding it with the same inputs is a no-op, and with different inputs is refused (the difference
flows into the next period through the ledger). Approval records the batch's SHA-256, so a batch changed
after approval is seen as tampered and nothing is published from it.

Events go to Kafka through `services.bus`, not into the lake directly: the lander lands them like every
other topic (manifests, offsets, dedup), and anything else that listens hears them. The approved batch is
the durable record, so publishing is at-least-once: event ids are derived from the approval and the line,
so a retried publish sends the same ids and consumers (the lander included) keep one of each.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from services import bus
from services.events import Envelope, PayoutScheduled
from services.lake import tmp_path
from services.payouts import PAYOUT, PayoutLine, Period, PriorPayout, line_errors
from services.settings import Settings

BATCHES = "payout_batches"
AUDIT = "payout_audit"
BATCH_PARQUET = "batch.parquet"
BATCH_CSV = "batch.csv"
APPROVAL = "approval.json"
PUBLISHED = "published.json"
AUDIT_CSV = "audit.csv"
FINANCE_NODE = "finance"

DRAFT = "draft"
APPROVED = "approved"
TAMPERED = "tampered"

AUDIT_FIELDS = ("at", "action", "period", "actor", "batch_sha256", "lines", "payouts", "gross_minor",
                "tax_minor", "net_minor", "detail")  # fmt: skip

BATCH_SCHEMA = pa.schema(
    [
        pa.field("period", pa.string(), nullable=False),
        pa.field("schedule", pa.string(), nullable=False),
        pa.field("period_start", pa.date32(), nullable=False),
        pa.field("period_end", pa.date32(), nullable=False),
        pa.field("channel_id", pa.string(), nullable=False),
        pa.field("tax_status", pa.string(), nullable=False),
        pa.field("payout_method", pa.string(), nullable=False),
        pa.field("verified", pa.bool_(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("carried_in_minor", pa.int64(), nullable=False),
        pa.field("period_share_minor", pa.int64(), nullable=False),
        pa.field("balance_minor", pa.int64(), nullable=False),
        pa.field("gross_individuals_minor", pa.int64(), nullable=False),
        pa.field("gross_companies_minor", pa.int64(), nullable=False),
        pa.field("gross_minor", pa.int64(), nullable=False),
        pa.field("ytd_income_before_minor", pa.int64(), nullable=False),
        pa.field("tax_minor", pa.int64(), nullable=False),
        pa.field("net_minor", pa.int64(), nullable=False),
        pa.field("carried_out_minor", pa.int64(), nullable=False),
        pa.field("currency", pa.string(), nullable=False),
    ]
)


class PayoutBatchError(RuntimeError):
    """A payout step that must not happen (the message says why and what to do instead)."""


def batch_dir(marts: Path, period: Period) -> Path:
    return marts / BATCHES / f"period={period.name}"


def audit_path(marts: Path) -> Path:
    return marts / AUDIT / AUDIT_CSV


# ---- encoding ---------------------------------------------------------------------------------------


def lines_table(lines: list[PayoutLine]) -> pa.Table:
    return pa.Table.from_pylist([line.as_row() for line in lines], schema=BATCH_SCHEMA)


def encode(table: pa.Table) -> tuple[bytes, bytes]:
    """The batch's Parquet and CSV bytes; the same lines always give the same bytes."""
    parquet = io.BytesIO()
    pq.write_table(table, parquet, compression="zstd")
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(table.column_names)
    for row in table.to_pylist():
        writer.writerow(_csv_cell(row[name]) for name in table.column_names)
    return parquet.getvalue(), text.getvalue().encode()


def _csv_cell(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path(path)
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---- reading ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Approval:
    by: str
    at: datetime
    batch_sha256: str


@dataclass(frozen=True, slots=True)
class BatchInfo:
    """A batch on disk and where it stands."""

    period: Period
    status: str  # draft, approved or tampered
    approval: Approval | None
    published: bool


def batch_periods(marts: Path) -> list[Period]:
    """Periods that have a batch, oldest end first."""
    root = marts / BATCHES
    found = [Period.parse(d.name.removeprefix("period=")) for d in root.glob("period=*") if _has_batch(d)]
    return sorted(found)


def _has_batch(folder: Path) -> bool:
    return (folder / BATCH_PARQUET).exists()


def read_approval(marts: Path, period: Period) -> Approval | None:
    path = batch_dir(marts, period) / APPROVAL
    if not path.exists():
        return None
    raw = json.loads(path.read_text())
    return Approval(raw["by"], datetime.fromisoformat(raw["at"]), raw["batch_sha256"])


def batch_info(marts: Path, period: Period) -> BatchInfo:
    folder = batch_dir(marts, period)
    if not _has_batch(folder):
        raise PayoutBatchError(f"there is no payout batch for {period}: run `efir payouts run {period}`")
    approval = read_approval(marts, period)
    if approval is None:
        status = DRAFT
    elif approval.batch_sha256 == _sha256((folder / BATCH_PARQUET).read_bytes()):
        status = APPROVED
    else:
        status = TAMPERED
    return BatchInfo(period, status, approval, (folder / PUBLISHED).exists())


def read_batch(marts: Path, period: Period) -> pa.Table:
    batch_info(marts, period)
    return pq.read_table(batch_dir(marts, period) / BATCH_PARQUET, schema=BATCH_SCHEMA)


def read_csv_export(marts: Path, period: Period) -> bytes:
    batch_info(marts, period)
    return (batch_dir(marts, period) / BATCH_CSV).read_bytes()


def prior_payouts(marts: Path, excluding: Period) -> list[PriorPayout]:
    """What every other batch paid, line by line (drafts too: the order rules keep them final-bound)."""
    files = [str(batch_dir(marts, p) / BATCH_PARQUET) for p in batch_periods(marts) if p != excluding]
    if not files:
        return []
    con = duckdb.connect()
    try:
        rows = con.sql(
            "SELECT channel_id, period_end, gross_individuals_minor, gross_companies_minor "
            "FROM read_parquet($files) WHERE status = $payout ORDER BY period_end, channel_id",
            params={"files": files, "payout": PAYOUT},
        ).fetchall()
    finally:
        con.close()
    return [PriorPayout(*row) for row in rows]


# ---- the order rules and writing ----------------------------------------------------------------------


def check_order(marts: Path, period: Period) -> None:
    """A batch builds on every earlier one, so those must be final, and nothing later may exist yet.

    Raises when an earlier batch is still a draft (its payouts could change under this one) or when a
    later batch exists while this period has none (that batch's balances did not subtract this one's).
    """
    others = [p for p in batch_periods(marts) if p != period]
    drafts = [p for p in others if p.end <= period.end and batch_info(marts, p).status != APPROVED]
    if drafts:
        names = ", ".join(p.name for p in drafts)
        raise PayoutBatchError(
            f"cannot build {period}: earlier batch(es) {names} are not approved; approve them first"
        )
    later = [p for p in others if p.end > period.end]
    if later and not _has_batch(batch_dir(marts, period)):
        names = ", ".join(p.name for p in later)
        raise PayoutBatchError(f"cannot build {period} after the later batch(es) {names}")


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    path: Path
    sha256: str
    written: bool  # False when an identical batch was already there


def write_batch(marts: Path, period: Period, lines: list[PayoutLine], *, actor: str) -> WriteOutcome:
    """Write the period's batch (Parquet and CSV), unless the same bytes are already there.

    An approved batch is never overwritten: the same lines are a no-op, different lines an error.
    """
    table = lines_table(lines)
    parquet, csv_bytes = encode(table)
    digest = _sha256(parquet)
    folder = batch_dir(marts, period)
    existing = folder / BATCH_PARQUET
    if existing.exists() and _sha256(existing.read_bytes()) == digest:
        return WriteOutcome(existing, digest, written=False)
    if read_approval(marts, period) is not None:
        raise PayoutBatchError(
            f"the batch for {period} is approved and final, but its inputs have changed since "
            "(a late event?): it stays as approved, and the difference carries into the next period"
        )
    # CSV first, Parquet last: the Parquet file is the batch, so a crash in between leaves no batch or an
    # old one beside a CSV that the next run overwrites.
    _write_atomically(folder / BATCH_CSV, csv_bytes)
    _write_atomically(existing, parquet)
    append_audit(marts, "built", period, actor, digest, table)
    return WriteOutcome(existing, digest, written=True)


# ---- approval and audit -----------------------------------------------------------------------------


def approve(marts: Path, period: Period, by: str, *, at: datetime | None = None) -> Approval:
    """Make the period's draft batch final, in the name of `by`; audit-logged."""
    by = by.strip()
    if not by:
        raise PayoutBatchError("an approval needs the approver's name")
    info = batch_info(marts, period)
    if info.status != DRAFT:
        raise PayoutBatchError(f"the batch for {period} is already {info.status}")
    errors = line_errors(read_batch(marts, period).to_pylist())
    if errors:
        raise PayoutBatchError(f"the batch for {period} does not add up, not approving: {errors[:3]}")
    parquet = (batch_dir(marts, period) / BATCH_PARQUET).read_bytes()
    approval = Approval(by, (at or datetime.now(UTC)).astimezone(UTC), _sha256(parquet))
    body = {"by": approval.by, "at": approval.at.isoformat(), "batch_sha256": approval.batch_sha256}
    # O_EXCL: of two approvers racing, exactly one wins; the other is told it is already approved.
    path = batch_dir(marts, period) / APPROVAL
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError as exc:
        raise PayoutBatchError(f"the batch for {period} is already approved") from exc
    with os.fdopen(fd, "w") as fh:
        json.dump(body, fh, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    append_audit(marts, "approved", period, by, approval.batch_sha256, read_batch(marts, period))
    return approval


def append_audit(
    marts: Path, action: str, period: Period, actor: str, digest: str, table: pa.Table, detail: str = ""
) -> None:
    """Append one line to the audit log (opened in append mode only; nothing ever rewrites it)."""
    rows = table.to_pylist()
    payouts = [r for r in rows if r["status"] == PAYOUT]
    record = {
        "at": datetime.now(UTC).isoformat(),
        "action": action,
        "period": period.name,
        "actor": actor,
        "batch_sha256": digest,
        "lines": len(rows),
        "payouts": len(payouts),
        "gross_minor": sum(r["gross_minor"] for r in payouts),
        "tax_minor": sum(r["tax_minor"] for r in payouts),
        "net_minor": sum(r["net_minor"] for r in payouts),
        "detail": detail,
    }
    path = audit_path(marts)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with open(path, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=AUDIT_FIELDS, lineterminator="\n")
        if new:
            writer.writeheader()
        writer.writerow(record)
        fh.flush()
        os.fsync(fh.fileno())


def read_audit(marts: Path) -> list[dict[str, str]]:
    path = audit_path(marts)
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# ---- events -----------------------------------------------------------------------------------------


def _event_id(approval: Approval, payout_id: str) -> str:
    """A UUIDv7 (time = the approval) whose random bits are a hash of the payout: the same every time."""
    ms = int(approval.at.timestamp() * 1000)
    rand = int.from_bytes(
        hashlib.sha256(f"{approval.batch_sha256}:{payout_id}".encode()).digest()[:10], "big"
    )
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


def scheduled_events(marts: Path, period: Period) -> list[Envelope]:
    """One `payout.scheduled` per paying line of an approved batch (none for carried balances)."""
    info = batch_info(marts, period)
    if info.status != APPROVED or info.approval is None:
        raise PayoutBatchError(f"the batch for {period} is {info.status}: only an approved batch is paid")
    approval = info.approval
    events = []
    for row in read_batch(marts, period).to_pylist():
        if row["status"] != PAYOUT:
            continue
        payout_id = f"{period.name}:{row['channel_id']}"
        payload = PayoutScheduled(
            payout_id=payout_id,
            period=period.name,
            schedule=row["schedule"],
            method=row["payout_method"],
            gross_minor=row["gross_minor"],
            tax_minor=row["tax_minor"],
            net_minor=row["net_minor"],
            tax_status=row["tax_status"],
            approved_by=approval.by,
        )
        events.append(
            Envelope.wrap(
                payload,
                channel_id=row["channel_id"],
                node_id=FINANCE_NODE,
                event_id=_event_id(approval, payout_id),
                occurred_at=approval.at,
            )
        )
    return events


def publish_scheduled(settings: Settings, marts: Path, period: Period, *, actor: str) -> int:
    """Publish the approved batch's events and wait for every acknowledgement; safe to repeat."""
    events = scheduled_events(marts, period)
    producer = bus.make_producer(settings)
    try:
        bus.publish(producer, events)
    finally:
        producer.close()
    folder = batch_dir(marts, period)
    _write_atomically(
        folder / PUBLISHED,
        json.dumps({"events": len(events), "at": datetime.now(UTC).isoformat()}, sort_keys=True).encode(),
    )
    digest = _sha256((folder / BATCH_PARQUET).read_bytes())
    append_audit(
        marts, "published", period, actor, digest, read_batch(marts, period), f"{len(events)} events"
    )
    return len(events)


def batch_totals(table: pa.Table) -> dict[str, Any]:
    """Sums a reviewer looks at first."""
    rows = table.to_pylist()
    paying = [r for r in rows if r["status"] == PAYOUT]
    return {
        "lines": len(rows),
        "payouts": len(paying),
        "gross_minor": sum(r["gross_minor"] for r in paying),
        "tax_minor": sum(r["tax_minor"] for r in paying),
        "net_minor": sum(r["net_minor"] for r in paying),
        "carried_minor": sum(r["carried_out_minor"] for r in rows),
    }
