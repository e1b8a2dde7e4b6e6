"""The fraud review decisions log: append-only, a later decision supersedes without erasing, concurrent
writers (processes and threads) never lose or tear a line, bad input is refused, and decisions become
labels that override chargebacks only where a reviewer decided."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from services.fraud_reviews import (
    MAX_NOTE,
    FraudReviewStore,
    ReviewError,
    latest,
    may_review,
    sanitise_note,
    with_review_labels,
)
from services.settings import Settings

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


def store_at(tmp_path: Path) -> FraudReviewStore:
    return FraudReviewStore(tmp_path / "fraud_reviews.jsonl")


def test_the_log_lives_in_the_data_dir_not_the_rebuildable_marts_unless_configured(tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path).fraud_reviews_path == tmp_path / "fraud_reviews.jsonl"
    assert Settings(data_dir=tmp_path, marts_dir=tmp_path / "m").fraud_reviews_path.parent == tmp_path
    moved = tmp_path / "elsewhere.jsonl"
    assert Settings(data_dir=tmp_path, fraud_reviews_file=moved).fraud_reviews_path == moved


def test_a_later_decision_supersedes_and_every_decision_is_kept(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    assert store.history() == [] and store.latest() == {}
    first = store.record("d-1", "fraud", reviewer="mila", role="moderator", note="ring pattern", at=T0)
    store.record("d-2", "legitimate", reviewer="olga", role="finance", at=T0 + timedelta(minutes=1))
    second = store.record(
        "d-1", "legitimate", reviewer="olga", role="finance", note="regular", at=T0 + timedelta(hours=1)
    )
    assert first.decided_at == T0 and first.note == "ring pattern" and first.role == "moderator"
    current = store.latest()
    assert current["d-1"] == second and current["d-2"].decision == "legitimate"
    assert [r.decision for r in store.history("d-1")] == ["fraud", "legitimate"]
    assert len(store.history()) == 3
    # A reopened store reads the same log (nothing lives only in memory).
    assert FraudReviewStore(store.path).latest() == current
    # Before a time, only decisions made strictly before it are in force.
    assert store.latest(before=T0 + timedelta(minutes=30)) == {"d-1": first, "d-2": current["d-2"]}
    assert store.latest(before=T0) == {}


def test_bad_input_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    good = {"reviewer": "mila", "role": "moderator"}
    cases = [
        (("", "fraud"), good, "not a donation id"),
        (("d 1; DROP", "fraud"), good, "not a donation id"),
        (("x" * 65, "fraud"), good, "not a donation id"),
        (("d-1", "maybe"), good, "a decision is one of fraud, legitimate"),
        (("d-1", "Fraud"), good, "a decision is one of"),
        (("d-1", "fraud"), {"reviewer": "Mila Smith", "role": "moderator"}, "not an account name"),
        (("d-1", "fraud"), {"reviewer": "sasha", "role": "streamer"}, "streamer role may not record"),
        (("d-1", "fraud"), {"reviewer": "x-y", "role": "admin"}, "admin role may not record"),
        (("d-1", "fraud"), {**good, "note": "n" * (MAX_NOTE + 1)}, f"at most {MAX_NOTE} characters"),
        (("d-1", "fraud"), {**good, "at": datetime(2026, 11, 28, 9, 0)}, "time zone"),
    ]
    for args, kwargs, message in cases:
        with pytest.raises(ReviewError, match=message):
            store.record(*args, **kwargs)  # type: ignore[arg-type]
    assert store.history() == []
    assert may_review("moderator") and may_review("finance") and not may_review("streamer")


def test_notes_are_sanitised() -> None:
    assert sanitise_note(None) is None
    assert sanitise_note("   \n\t ") is None
    assert sanitise_note("  same card,\r\n\tnew   device ") == "same card, new device"
    # Bidi overrides, zero-width and other control characters cannot hide or reorder text in the log.
    assert sanitise_note("ok\u202eevil\u200b\x00\x1b[31m") == "okevil[31m"
    assert sanitise_note("cafe\u0301") == "caf\u00e9"  # NFC: one code point per letter
    assert sanitise_note(" " + "n" * MAX_NOTE + " \n") == "n" * MAX_NOTE  # the limit counts what is kept


def test_an_unfinished_last_line_is_skipped_then_cut_off_by_the_next_writer(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    store.record("d-1", "fraud", reviewer="mila", role="moderator", at=T0)
    with store.path.open("ab") as fh:  # a writer that died mid-append
        fh.write(b'{"decided_at": "2026-11-28T09:')
    assert [r.donation_id for r in store.history()] == ["d-1"]
    store.record("d-2", "legitimate", reviewer="mila", role="moderator", at=T0)
    assert [r.donation_id for r in store.history()] == ["d-1", "d-2"]
    assert store.path.read_text().count("\n") == 2


def test_a_corrupt_complete_line_is_reported_not_skipped(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    store.record("d-1", "fraud", reviewer="mila", role="moderator", at=T0)
    with store.path.open("a") as fh:
        fh.write('{"donation_id": "d-2", "decision": "maybe"}\n')
    with pytest.raises(ReviewError, match="line 2 is not a fraud review decision"):
        store.history()


WRITES = 40
REPO = Path(__file__).resolve().parents[2]
# One writer process: wait for the start signal, then append WRITES decisions as fast as it can. A fresh
# interpreter (not multiprocessing, whose spawn re-imports whatever `__main__` a test left behind).
WRITER = """
import sys, time
from pathlib import Path
from services.fraud_reviews import FraudReviewStore
path, name, go, writes = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
while not go.exists():
    time.sleep(0.001)
store = FraudReviewStore(Path(path))
for i in range(writes):
    store.record(f"{name}-{i}", "fraud" if i % 2 else "legitimate", reviewer=name, role="moderator")
"""


def test_concurrent_writer_processes_lose_and_tear_nothing(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    go = tmp_path / "go"
    names = ["mila", "pavel", "ira"]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(store.path), name, str(go), str(WRITES)], cwd=REPO
        )
        for name in names
    ]
    go.touch()
    assert [p.wait(timeout=120) for p in procs] == [0] * len(names)
    history = store.history()  # every line parses: none interleaved with another
    assert len(history) == len(names) * WRITES
    assert store.path.read_text().count("\n") == len(names) * WRITES
    for name in names:  # each writer's own order survives
        assert [r.donation_id for r in history if r.reviewer == name] == [
            f"{name}-{i}" for i in range(WRITES)
        ]


def test_concurrent_writer_threads_on_one_donation_keep_every_decision(tmp_path: Path) -> None:
    store = store_at(tmp_path)

    def decide(i: int) -> None:
        store.record("d-1", "fraud" if i % 2 else "legitimate", reviewer=f"r{i:02d}", role="moderator")

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(decide, range(64)))
    history = store.history()
    assert sorted(r.reviewer for r in history) == [f"r{i:02d}" for i in range(64)]
    assert store.latest()["d-1"] == history[-1]  # the last line written is the one in force


def test_decisions_override_chargeback_labels_only_where_made(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    store.record("charged-but-fine", "legitimate", reviewer="mila", role="moderator", at=T0)
    store.record("clean-but-fraud", "fraud", reviewer="mila", role="moderator", at=T0)
    store.record("agreed", "fraud", reviewer="mila", role="moderator", at=T0)
    store.record("not-in-features", "fraud", reviewer="mila", role="moderator", at=T0)
    ids = pl.Series(["charged-but-fine", "clean-but-fraud", "agreed", "untouched-1", "untouched-0"])
    chargebacks = pl.Series([1, 0, 1, 1, 0], dtype=pl.Int8)
    labels = with_review_labels(ids, chargebacks, store.latest())
    assert labels.to_list() == [0, 1, 1, 1, 0]
    assert labels.dtype == pl.Int8 and labels.name == "label"
    assert with_review_labels(ids, chargebacks, latest([])).to_list() == chargebacks.to_list()
