"""Broadcast rows and their lifecycle events, written together through the outbox.

Every event carries the channel's game as it is in the same transaction (`channel_game`), so
`stream.started` says what the broadcast began with; changes while live are `stream.game_changed`.

Plain synchronous functions over a session factory: the stream manager runs them in a worker thread
(`asyncio.to_thread`), so the event loop that carries every publisher never waits on the database.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from ingest_node.ingest.channel_game import current_slug
from ingest_node.ingest.models import Broadcast, BroadcastStatus
from ingest_node.outbox import enqueue
from services.events import Envelope, StreamEnded, StreamErrored, StreamLadderChanged, StreamStarted
from services.ids import new_id
from services.settings import Settings


class LifecycleRecorder:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session]) -> None:
        self.settings = settings
        self.sessions = sessions

    def started(self, channel_id: str) -> str:
        """A new broadcast: its row and `stream.started` in one transaction; returns its id."""
        broadcast_id = new_id()
        with self.sessions.begin() as session:
            session.add(Broadcast(broadcast_id=broadcast_id, channel_id=channel_id, reason="", restarts=0))
            session.flush()
            game = current_slug(session, channel_id)
            enqueue(session, self._envelope(channel_id, StreamStarted(broadcast_id=broadcast_id, game=game)))
        return broadcast_id

    def ended(
        self,
        channel_id: str,
        broadcast_id: str,
        *,
        errored: bool,
        reason: str,
        restarts: int,
        renditions: str = "",
    ) -> None:
        """Close the broadcast row and emit `stream.ended` or `stream.errored` with it."""
        now = datetime.now(UTC)
        with self.sessions.begin() as session:
            row = session.get(Broadcast, broadcast_id)
            duration = None
            if row is not None:
                row.status = BroadcastStatus.ERRORED if errored else BroadcastStatus.ENDED
                row.ended_at = now
                row.reason = reason[:300]
                row.restarts = restarts
                duration = int((now - row.started_at).total_seconds())
            cls = StreamErrored if errored else StreamEnded
            payload = cls(
                broadcast_id=broadcast_id,
                reason=reason[:300],
                restarts=restarts,
                renditions=renditions,
                duration_seconds=duration,
                game=current_slug(session, channel_id),
            )
            enqueue(session, self._envelope(channel_id, payload))

    def ladder_changed(self, channel_id: str, broadcast_id: str, renditions: list[str], reason: str) -> None:
        with self.sessions.begin() as session:
            payload = StreamLadderChanged(
                broadcast_id=broadcast_id,
                renditions=",".join(renditions),
                reason=reason[:300],
                game=current_slug(session, channel_id),
            )
            enqueue(session, self._envelope(channel_id, payload))

    def _envelope(
        self, channel_id: str, payload: StreamStarted | StreamEnded | StreamErrored | StreamLadderChanged
    ) -> Envelope:
        return Envelope.wrap(payload, channel_id=channel_id, node_id=self.settings.node_id)
