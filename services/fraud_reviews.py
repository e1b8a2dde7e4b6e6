"""Moderators' decisions on the fraud review queue: an append-only audit log of who decided what and when.

A moderator (or finance) looks at a queued donation and records `fraud` or `legitimate`, with an
optional note. Every decision is kept, in the order it was recorded: a later decision on the same
donation supersedes the earlier one for every reader (`latest`), but the earlier one stays in the file,
because the log is the audit trail and the fraud model's labels are rebuilt from it (`assets/fraud.py`).

The log is one JSON Lines file, `DATA_DIR/fraud_reviews.jsonl` by default (`EFIR_FRAUD_REVIEWS_FILE` to
move it; `Settings.fraud_reviews_path`), beside the dashboard accounts rather than under the marts: marts
are derived and may be wiped and rebuilt from the lake, this log cannot. The dashboards (writers) and
Dagster (reader) share it by path alone. Writers follow `services.dashboard_accounts`: they hold an
exclusive lock file for the append, so two browser sessions deciding at once never interleave or lose a
line; each record is one `write` of a whole line, flushed to disk before `record` returns. A line without
its newline can only be a writer's crash mid-append (never acknowledged): readers skip such a tail, and
the next writer, holding the lock, cuts it off before appending. Any other unreadable line is reported,
never skipped, since silently dropping an audit record would be worse than a clear error.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, get_args

import polars as pl

from services.dashboard_accounts import ROLE_GRANTS, USERNAME
from services.file_lock import exclusive

Decision = Literal["fraud", "legitimate"]
DECISIONS: tuple[str, ...] = get_args(Decision)
#: The dashboard page whose grant (`ROLE_GRANTS`) lets a role record decisions.
REVIEW_PAGE = "moderation"
#: Longest note kept, in characters after sanitising; longer ones are refused, not cut.
MAX_NOTE = 500
# Donation ids are UUIDv7 strings made at the edge; allow any short id of these characters (tests, imports).
DONATION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


class ReviewError(ValueError):
    """A decision the store refuses, or a log it cannot read, with a message meant for the reviewer."""


@dataclass(frozen=True, slots=True)
class Review:
    """One recorded decision on one donation."""

    donation_id: str
    decision: Decision
    note: str | None
    reviewer: str
    role: str
    decided_at: datetime  # UTC

    def as_json(self) -> str:
        row = asdict(self) | {"decided_at": self.decided_at.isoformat()}
        return json.dumps(row, ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> Review:
        row = json.loads(line)
        decided_at = datetime.fromisoformat(row["decided_at"])
        if decided_at.tzinfo is None or row["decision"] not in DECISIONS:
            raise ValueError("not a decision record")
        return cls(
            donation_id=str(row["donation_id"]),
            decision=row["decision"],
            note=row.get("note"),
            reviewer=str(row["reviewer"]),
            role=str(row["role"]),
            decided_at=decided_at.astimezone(UTC),
        )


def may_review(role: str) -> bool:
    """Whether a role may record decisions: the roles granted the moderation page (finance, moderator)."""
    grant = ROLE_GRANTS.get(role)
    return grant is not None and REVIEW_PAGE in grant.pages


def sanitise_note(note: str | None) -> str | None:
    """The note as stored: Unicode NFC, control and invisible format characters (bidi overrides, zero-width)
    removed, runs of whitespace (newlines included) made one space, trimmed; None when nothing is left.
    A note longer than `MAX_NOTE` after that is refused."""
    if note is None:
        return None
    text = unicodedata.normalize("NFC", note)
    text = "".join(
        " " if ch.isspace() else ch for ch in text if ch.isspace() or unicodedata.category(ch)[0] != "C"
    )
    text = " ".join(text.split())
    if len(text) > MAX_NOTE:
        raise ReviewError(f"a note has at most {MAX_NOTE} characters (this one has {len(text)})")
    return text or None


class FraudReviewStore:
    """The decisions log at `path` (see the module's docstring for the format and the locking)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with exclusive(self.path):
            yield

    def record(
        self,
        donation_id: str,
        decision: str,
        *,
        reviewer: str,
        role: str,
        note: str | None = None,
        at: datetime | None = None,
    ) -> Review:
        """Append a decision and return it as stored; refuse a bad id, decision, reviewer, role or note."""
        donation_id = donation_id.strip()
        if not DONATION_ID.match(donation_id):
            raise ReviewError(f"not a donation id: {donation_id[:80]!r}")
        if decision not in DECISIONS:
            raise ReviewError(f"a decision is one of {', '.join(DECISIONS)}, not {decision!r}")
        if not USERNAME.match(reviewer):
            raise ReviewError(f"not an account name: {reviewer[:40]!r}")
        if not may_review(role):
            raise ReviewError(f"the {role} role may not record fraud review decisions")
        at = at or datetime.now(UTC)
        if at.tzinfo is None:
            raise ReviewError("a decision time needs a time zone")
        review = Review(donation_id, decision, sanitise_note(note), reviewer, role, at.astimezone(UTC))  # type: ignore[arg-type]
        line = (review.as_json() + "\n").encode()
        with self._locked():
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o640)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    # A writer died mid-line (its record was never acknowledged): drop the fragment.
                    os.ftruncate(fd, self._complete_length(fd, size))
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
        return review

    @staticmethod
    def _complete_length(fd: int, size: int) -> int:
        """Bytes up to and including the last newline of the file open at `fd`."""
        data = os.pread(fd, size, 0)
        return data.rfind(b"\n") + 1

    def history(self, donation_id: str | None = None) -> list[Review]:
        """Every decision (of one donation when given), oldest first: the audit log."""
        if not self.path.exists():
            return []
        text = self.path.read_bytes().decode()
        lines = text.split("\n")[:-1]  # the part after the last newline is empty or an unfinished append
        reviews: list[Review] = []
        for number, line in enumerate(lines, start=1):
            try:
                review = Review.from_json(line)
            except (ValueError, KeyError, TypeError) as exc:
                raise ReviewError(f"{self.path} line {number} is not a fraud review decision: {exc}") from exc
            if donation_id is None or review.donation_id == donation_id:
                reviews.append(review)
        return reviews

    def latest(self, before: datetime | None = None) -> dict[str, Review]:
        """The decision in force per donation (see `latest`)."""
        return latest(self.history(), before)


def latest(reviews: Iterable[Review], before: datetime | None = None) -> dict[str, Review]:
    """The decision in force per donation: the last one recorded, or the last one decided strictly before
    `before` when given (how a time-split evaluation keeps decisions made after its split out of training)."""
    current: dict[str, Review] = {}
    for review in reviews:
        if before is None or review.decided_at < before:
            current[review.donation_id] = review
    return current


def with_review_labels(
    donation_ids: pl.Series, chargeback_labels: pl.Series, decisions: dict[str, Review]
) -> pl.Series:
    """The training labels: a reviewer's decision where there is one (`fraud` 1, `legitimate` 0), else the
    chargeback label. A decision overrides only its own donation, and only because a reviewer said so; a
    donation nobody decided keeps what the lake says (charged back or not)."""
    if not decisions:
        return chargeback_labels.cast(pl.Int8).alias("label")
    reviewed = pl.DataFrame(
        {
            "donation_id": list(decisions),
            "reviewed": [int(r.decision == "fraud") for r in decisions.values()],
        },
        schema={"donation_id": pl.String, "reviewed": pl.Int8},
    )
    frame = pl.DataFrame({"donation_id": donation_ids, "label": chargeback_labels.cast(pl.Int8)})
    joined = frame.join(reviewed, on="donation_id", how="left", maintain_order="left")
    return joined.select(pl.coalesce("reviewed", "label").cast(pl.Int8).alias("label"))["label"]
