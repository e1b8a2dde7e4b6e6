"""The fraud evaluation notebook runs top to bottom over marts the real assets built, and on nothing."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from assets.fraud import model_dir
from services.fraud_patterns import labelled_donations
from tests.assets.test_fraud_assets import DAYS, START, build
from tests.fixture_lake import land

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "fraud_model_evaluation.ipynb"


def execute(monkeypatch: pytest.MonkeyPatch, lake: Path, marts: Path) -> tuple[str, set[str]]:
    """Run the notebook in a real kernel; return its printed text and the output types it made."""
    monkeypatch.setenv("EFIR_LAKE_DIR", str(lake))  # the kernel inherits the environment
    monkeypatch.setenv("EFIR_MARTS_DIR", str(marts))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    ).execute()
    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    return text, {o.output_type for o in outputs}


def test_notebook_shows_the_recorded_holdout_metrics_and_curves(
    monkeypatch: pytest.MonkeyPatch, lake: Path, tmp_path: Path
) -> None:
    land(lake, labelled_donations(11, ["alpha", "beta"], START, len(DAYS), donations=900, rings=24))
    marts = tmp_path / "marts"
    metadata = build(lake, marts)
    text, kinds = execute(monkeypatch, lake, marts)
    summary = json.loads((model_dir(marts) / str(metadata["version"]) / "metrics.json").read_text())
    evaluation = summary["evaluation"]
    assert f"model {metadata['version']} (supervised)" in text
    model, rules = evaluation["model"], evaluation["rules"]
    assert f"model   {model['precision']:>11.3f}{model['recall']:>9.3f}{model['pr_auc']:>9.3f}" in text
    assert f"rules   {rules['precision']:>11.3f}{rules['recall']:>9.3f}{rules['pr_auc']:>9.3f}" in text
    assert "display_data" in kinds  # the precision-recall chart
    assert "precision and recall of the model by threshold:" in text


def test_notebook_runs_before_any_model(monkeypatch: pytest.MonkeyPatch, lake: Path, tmp_path: Path) -> None:
    text, _ = execute(monkeypatch, lake, tmp_path / "no-marts")
    assert "No fraud model yet" in text
    assert "Not enough labelled holdout donations" in text
    assert "No donation reached the review threshold." in text
