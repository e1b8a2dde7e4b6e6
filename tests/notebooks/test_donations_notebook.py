"""The analyst notebook runs top to bottom against a hand-made lake and prints the right counts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import nbformat
import pytest
from tests.fixture_lake import land, no_money, processed, reversal
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "donations_per_day.ipynb"


def execute(monkeypatch: pytest.MonkeyPatch, lake: Path) -> tuple[str, set[str]]:
    """Run the notebook in a real kernel; return its printed text and the output types it made."""
    monkeypatch.setenv("EFIR_LAKE_DIR", str(lake))  # the kernel inherits the environment
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    ).execute()
    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    return text, {o.output_type for o in outputs}


def test_notebook_counts_settled_donations_per_day(monkeypatch: pytest.MonkeyPatch, lake: Path) -> None:
    day1, day2 = datetime(2026, 11, 26, 12, tzinfo=UTC), datetime(2026, 11, 27, 12, tzinfo=UTC)
    twice = processed("alpha", 1001, "RUB", day1)
    refunded = processed("beta", 700, "USD", day1)
    land(
        lake,
        [
            twice,
            twice,  # landed twice, counted once
            refunded,
            processed("alpha", 500, "EUR", day2),
            reversal(refunded, day2),  # a refund is not a donation
            no_money("alpha", 900, day2, failed=True),
        ],
    )
    text, kinds = execute(monkeypatch, lake)
    assert "2026-11-26          2\n" in text
    assert "2026-11-27          1\n" in text
    assert "display_data" in kinds  # the matplotlib chart


def test_notebook_runs_on_an_empty_lake(monkeypatch: pytest.MonkeyPatch, lake: Path) -> None:
    text, _ = execute(monkeypatch, lake)
    assert "No donations in the lake yet." in text
