"""The moderation page over a `fraud_review_queue` mart in the assets' own schema: score, reasons, donor
and amount, per day; the model's holdout metrics above; for finance and moderators only, a moderator seeing
nothing else. Reviewers record decisions into the real decisions log and see them (and who made them) in
the table, undecided donations only by default."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from assets.fraud import REVIEW_SCHEMA
from assets.mart_files import write_mart_partition
from dashboards.auth import NOT_GRANTED, STATE_KEY
from services.dashboard_accounts import Principal
from services.fraud_reviews import FraudReviewStore
from services.lake import mart_dir
from services.marts import FRAUD_MODEL_DIR, FRAUD_MODEL_METRICS, FRAUD_MODEL_POINTER, FRAUD_REVIEW_MART
from tests.dashboards.signin import reviews_file, signed_in_app

PAGE = Path(__file__).resolve().parents[2] / "dashboards" / "pages" / "moderation.py"
EMPTY_STATE = (
    "No fraud review queue yet — materialise fraud_features, fraud_model and fraud_scores in Dagster"
)
NOTHING_QUEUED = "Nothing reached the review threshold on this day"
DAY, QUIET_DAY = date(2026, 11, 27), date(2026, 11, 26)


def queued(donation_id: str, score: float, **kw: object) -> dict[str, object]:
    row: dict[str, object] = {
        "day": DAY,
        "donation_id": donation_id,
        "occurred_at": datetime(2026, 11, 27, 3, 15, tzinfo=UTC),
        "channel_id": "alpha",
        "user_id": None,
        "donor_key": "card:c1",
        "donor_name": None,
        "amount_minor": 1_000,
        "currency": "RUB",
        "gross_rub_minor": 1_000,
        "score": score,
        "reasons": ["small payments from this IP in 10 min: 7 (typical 0)"],
        "rules_flag": "card_testing_ip",
        "model_version": "0123456789abcdef",
        "model_kind": "supervised",
    }
    return row | kw


@pytest.fixture
def marts(tmp_path: Path) -> Path:
    root = tmp_path / "marts"
    rows = [
        queued("d-low", 0.61),
        queued(
            "d-high",
            0.97,
            user_id="user_9",
            donor_name="NightOwl",
            amount_minor=3_000,
            currency="USD",
            gross_rub_minor=240_364,
            reasons=[
                "account age (log hours since first seen): 0 (typical 5.2)",
                "amount (log of roubles): 7.8",
            ],
            rules_flag=None,
            occurred_at=datetime(2026, 11, 27, 22, 40, tzinfo=UTC),
        ),
    ]
    write_mart_partition(root, FRAUD_REVIEW_MART, DAY, pa.Table.from_pylist(rows, schema=REVIEW_SCHEMA))
    write_mart_partition(root, FRAUD_REVIEW_MART, QUIET_DAY, REVIEW_SCHEMA.empty_table())
    model = mart_dir(root, FRAUD_MODEL_DIR)
    (model / "0123456789abcdef").mkdir(parents=True)
    (model / FRAUD_MODEL_POINTER).write_text(json.dumps({"version": "0123456789abcdef"}))
    metrics = {
        "version": "0123456789abcdef",
        "kind": "supervised",
        "train_rows": 1200,
        "evaluation": {
            "split_at": "2026-11-20",
            "model": {"precision": 0.75, "recall": 0.66, "pr_auc": 0.77},
            "rules": {"precision": 0.71, "recall": 0.6, "pr_auc": 0.45},
        },
    }
    (model / "0123456789abcdef" / FRAUD_MODEL_METRICS).write_text(json.dumps(metrics))
    return root


def open_page(monkeypatch: pytest.MonkeyPatch, marts_dir: Path) -> AppTest:
    return signed_in_app(monkeypatch, marts_dir, role="finance", page="pages/moderation.py")


def test_queue_shows_scores_reasons_donor_and_amount_highest_first(
    monkeypatch: pytest.MonkeyPatch, marts: Path
) -> None:
    app = open_page(monkeypatch, marts)
    assert app.selectbox(key="day").options == ["2026-11-27", "2026-11-26", "All days"]
    assert [m.value for m in app.metric] == ["2", "2", "2 413.64 RUB", "0.97"]
    rows = app.dataframe[0].value.to_dict("records")
    assert [(r["Score"], r["Donor"], r["Amount"], r["In RUB"], r["Edge rule"]) for r in rows] == [
        (0.97, "NightOwl", "30.00 USD", "2 403.64 RUB", ""),
        (0.61, "anonymous", "10.00 RUB", "10.00 RUB", "card_testing_ip"),
    ]
    assert rows[0]["Top reasons"] == (
        "account age (log hours since first seen): 0 (typical 5.2); amount (log of roubles): 7.8"
    )
    caption = app.caption[0].value
    assert "0123456789abcdef" in caption and "PR-AUC 0.77 (rules 0.45)" in caption


def test_a_day_with_nothing_queued_says_so(monkeypatch: pytest.MonkeyPatch, marts: Path) -> None:
    app = open_page(monkeypatch, marts)
    app.selectbox(key="day").select("2026-11-26").run()
    assert [m.value for m in app.metric] == ["0", "0", "0.00 RUB", "0.00"]
    assert [i.value for i in app.info] == [NOTHING_QUEUED]
    assert not app.dataframe


def test_before_any_scores_the_page_says_what_to_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    app = open_page(monkeypatch, tmp_path / "no-marts")
    assert [i.value for i in app.info] == [EMPTY_STATE]


def run_page_as(page: Path, who: Principal) -> AppTest:
    """A page file run on its own (no app, no menu) for `who`: the page's own check must hold."""
    app = AppTest.from_file(str(page), default_timeout=60)
    app.session_state[STATE_KEY] = who
    return app.run()


def test_a_streamer_cannot_open_the_queue(monkeypatch: pytest.MonkeyPatch, marts: Path) -> None:
    app = signed_in_app(monkeypatch, marts, role="streamer", channels=["alpha"])
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        app.switch_page("pages/moderation.py")
    page = run_page_as(PAGE, Principal("alpha-owner", "streamer", ("alpha",)))
    assert [e.value for e in page.error] == [NOT_GRANTED.format(role="streamer")]
    assert not page.dataframe and not page.metric and not page.radio and not page.button
    assert FraudReviewStore(reviews_file(marts)).history() == []


def test_a_moderator_lands_on_the_queue_of_every_channel_and_sees_nothing_else(
    monkeypatch: pytest.MonkeyPatch, marts: Path
) -> None:
    write_mart_partition(
        marts,
        FRAUD_REVIEW_MART,
        DAY,
        pa.Table.from_pylist(
            [queued("d-high", 0.97), queued("d-beta", 0.7, channel_id="beta")], schema=REVIEW_SCHEMA
        ),
    )
    app = signed_in_app(monkeypatch, marts, role="moderator", username="mila")
    assert [t.value for t in app.title] == ["Fraud review"]
    assert (
        "mila" in app.sidebar.caption[0].value and "moderator: all channels" in app.sidebar.caption[0].value
    )
    assert sorted(r["Channel"] for r in app.dataframe[0].value.to_dict("records")) == ["alpha", "beta"]
    # The menu holds the queue alone: revenue, audience and payouts cannot be switched to.
    for page in ("pages/streamer.py", "pages/audience.py", "pages/finance.py"):
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            app.switch_page(page)


def test_a_moderator_reaching_finance_or_revenue_pages_directly_is_refused(
    monkeypatch: pytest.MonkeyPatch, marts: Path
) -> None:
    monkeypatch.setenv("EFIR_MARTS_DIR", str(marts))
    mila = Principal("mila", "moderator", ())
    for name in ("finance.py", "streamer.py", "audience.py"):
        page = run_page_as(PAGE.parent / name, mila)
        assert [e.value for e in page.error] == [NOT_GRANTED.format(role="moderator")], name
        assert not page.dataframe and not page.metric and not page.title, name


# ---- recording decisions ----------------------------------------------------------------------------

RECORD = "Record decision"


def decide(app: AppTest, donation: str, verdict: str | None, note: str = "") -> AppTest:
    """Fill the page's decision form and submit it."""
    app.selectbox(key="review_donation").select(donation)
    if verdict is not None:
        app.radio(key="review_decision").set_value(verdict)
    app.text_area(key="review_note").input(note)
    next(b for b in app.button if b.label == RECORD).click().run()
    assert not app.exception, app.exception
    return app


def table(app: AppTest) -> list[dict[str, object]]:
    records: list[dict[str, object]] = app.dataframe[0].value.to_dict("records")
    return records


def test_a_moderator_records_a_decision_that_is_persisted_and_shown(
    monkeypatch: pytest.MonkeyPatch, marts: Path
) -> None:
    app = signed_in_app(monkeypatch, marts, role="moderator", username="mila")
    assert app.checkbox(key="undecided_only").value is True
    assert (
        app.selectbox(key="review_donation").options[0].startswith("d-high · alpha · NightOwl · score 0.97")
    )
    decide(app, "d-high", "Fraud", note="  new account,\n large USD amount at night ")

    assert [s.value for s in app.success] == ["Recorded: donation d-high is fraud (by mila)"]
    (review,) = FraudReviewStore(reviews_file(marts)).history()
    assert (review.donation_id, review.decision, review.reviewer, review.role) == (
        "d-high",
        "fraud",
        "mila",
        "moderator",
    )
    assert review.note == "new account, large USD amount at night"
    # Undecided only (the default): the decided donation left the table and the form.
    assert [r["Donation"] for r in table(app)] == ["d-low"]
    assert app.selectbox(key="review_donation").options == ["d-low · alpha · anonymous · score 0.61"]
    assert [m.value for m in app.metric][:2] == ["2", "1"]

    app.checkbox(key="undecided_only").uncheck().run()
    rows = {r["Donation"]: r for r in table(app)}
    assert rows["d-high"]["Decision"] == "fraud"
    assert str(rows["d-high"]["Decided by"]).startswith("mila (moderator), ")
    assert rows["d-low"]["Decision"] == "" and rows["d-low"]["Decided by"] == ""
    history = app.dataframe[1].value.to_dict("records")
    assert [(h["Donation"], h["Decision"], h["By"]) for h in history] == [
        ("d-high", "fraud", "mila (moderator)")
    ]


def test_a_later_decision_supersedes_and_both_stay_in_the_log(
    monkeypatch: pytest.MonkeyPatch, marts: Path
) -> None:
    FraudReviewStore(reviews_file(marts)).record("d-high", "fraud", reviewer="mila", role="moderator")
    app = open_page(monkeypatch, marts)  # finance may review too
    app.checkbox(key="undecided_only").uncheck().run()
    decide(app, "d-high", "Legitimate", note="known donor, confirmed by the bank")
    assert [s.value for s in app.success] == [
        "Recorded: donation d-high is legitimate (by olga); "
        "it supersedes mila's “fraud”, which stays in the log"
    ]
    store = FraudReviewStore(reviews_file(marts))
    assert [(r.reviewer, r.decision) for r in store.history("d-high")] == [
        ("mila", "fraud"),
        ("olga", "legitimate"),
    ]
    assert store.latest()["d-high"].decision == "legitimate"
    assert {r["Donation"]: r["Decision"] for r in table(app)}["d-high"] == "legitimate"


def test_a_submission_without_a_decision_is_refused(monkeypatch: pytest.MonkeyPatch, marts: Path) -> None:
    app = signed_in_app(monkeypatch, marts, role="moderator", username="mila")
    decide(app, "d-low", None)
    assert [e.value for e in app.error] == ["Choose Fraud or Legitimate before recording"]
    assert not app.success
    assert FraudReviewStore(reviews_file(marts)).history() == []


def test_when_every_queued_donation_is_decided_the_page_says_so(
    monkeypatch: pytest.MonkeyPatch, marts: Path
) -> None:
    store = FraudReviewStore(reviews_file(marts))
    store.record("d-high", "fraud", reviewer="mila", role="moderator")
    store.record("d-low", "legitimate", reviewer="mila", role="moderator")
    app = signed_in_app(monkeypatch, marts, role="moderator", username="mila")
    assert [m.value for m in app.metric][:2] == ["2", "0"]
    assert [i.value for i in app.info] == [
        "Every queued donation of this day has a decision; untick “Undecided only” to see them"
    ]
    assert not app.dataframe


def test_an_unreadable_decisions_log_is_an_error_not_an_empty_queue(
    monkeypatch: pytest.MonkeyPatch, marts: Path
) -> None:
    path = reviews_file(marts)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("not json\n")
    app = signed_in_app(monkeypatch, marts, role="moderator", username="mila")
    assert len(app.error) == 1 and "line 1 is not a fraud review decision" in app.error[0].value
    assert not app.dataframe and RECORD not in [b.label for b in app.button]
