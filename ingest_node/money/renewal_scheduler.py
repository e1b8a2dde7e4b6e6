"""The subscription renewal job on a schedule inside the node.

It runs at start and then every EFIR_SUBSCRIPTION_RENEWAL_INTERVAL_SECONDS (0 turns it off).

Several nodes on one PostgreSQL would all wake up; a session-level advisory lock (like the outbox relay's
turn) lets one of them run a round and the others skip it. The lock is an optimisation, not the guard
against double charges: `payments.renew_due` is safe to run concurrently on its own (a renewal charge's
Idempotency-Key is `renew:<subscription>:<period>`, unique in the database, and the provider deduplicates
by reference), which is what SQLite (one node) relies on.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from ingest_node.money import payments
from services.payments import PaymentClient
from services.settings import Settings

log = logging.getLogger(__name__)

#: PostgreSQL advisory lock key of the renewal round (distinct from the outbox relay's).
RENEWAL_LOCK_KEY = 7301120402


def run_round(
    sessions: sessionmaker[Session],
    settings: Settings,
    client: PaymentClient,
    now: datetime | None = None,
) -> payments.RenewalReport | None:
    """One renewal round, or None when another node holds the round's lock (PostgreSQL only)."""
    engine = sessions.kw["bind"]
    if engine.dialect.name != "postgresql":
        return payments.renew_due(sessions, settings, client, now)
    with engine.connect() as conn:
        if not conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": RENEWAL_LOCK_KEY}).scalar():
            conn.rollback()
            return None
        conn.commit()  # the lock is the session's, not the transaction's: it stays until unlocked
        try:
            return payments.renew_due(sessions, settings, client, now)
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": RENEWAL_LOCK_KEY})
            conn.commit()


class RenewalScheduler:
    """A daemon thread running `run_round` at start and then every interval; 0 disables it."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session], client: PaymentClient) -> None:
        self._settings, self._sessions, self._client = settings, sessions, client
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rounds = 0

    def start(self) -> RenewalScheduler:
        if self._settings.subscription_renewal_interval_seconds > 0:
            self._thread = threading.Thread(target=self._run, name="renewal-scheduler", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        interval = self._settings.subscription_renewal_interval_seconds
        while not self._stop.is_set():
            try:
                report = run_round(self._sessions, self._settings, self._client)
                self.rounds += 1
                if report is not None and (report.charged or report.expired or report.notices):
                    log.info(
                        "renewals: %d charged, %d expired, %d notices",
                        len(report.charged),
                        len(report.expired),
                        len(report.notices),
                    )
            except Exception:  # a bad round must not end the schedule; the next one retries
                log.exception("subscription renewal round failed")
            self._stop.wait(interval)
