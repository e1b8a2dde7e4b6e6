"""The ingest node's FastAPI app: `create_app(settings)` builds one node with its own state.

The lifespan owns what must start and stop with the app: the outbox relay thread and the HTTP client
of the Payment Service. The database is migrated by `python -m ingest_node` (or the caller), not here,
so an app never changes a schema behind an operator's back; /readyz says when it is not at head.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from ingest_node.chat.fanout import ChatFanout
from ingest_node.chat.service import ChatService
from ingest_node.db import make_engine, make_session_factory
from ingest_node.ingest.service import IngestService
from ingest_node.log_redaction import install as redact_url_tokens
from ingest_node.loyalty_export import LoyaltyBook
from ingest_node.metrics import NodeMetrics
from ingest_node.money.alerts import AlertHub, install_alert_feed
from ingest_node.money.challenges import install_interactive_feed
from ingest_node.money.edge_guard import EdgeGuard
from ingest_node.money.renewal_scheduler import RenewalScheduler
from ingest_node.outbox import OutboxRelay
from ingest_node.routes import (
    channels,
    chat,
    donate_page,
    donation_review,
    donation_rules,
    donations,
    gifts,
    health,
    hls,
    interactive,
    loyalty,
    overlays,
    recordings,
    streams,
    subscriptions,
    webhooks,
    widgets,
)
from ingest_node.routes import sponsorships as sponsorship_routes
from services.chat.tokens import HmacTokens
from services.payments import PaymentClient
from services.settings import Settings, get_settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    engine = make_engine(settings)
    sessions = make_session_factory(engine)
    metrics = NodeMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.payments = PaymentClient(
            settings.payments_url, settings.payments_api_key.get_secret_value()
        )
        relay = OutboxRelay(settings, sessions, metrics).start()
        app.state.relay = relay
        app.state.renewals = RenewalScheduler(settings, sessions, app.state.payments).start()
        app.state.ingest = await IngestService(settings, sessions).start()  # RTMP, workers, viewer events
        fanout = ChatFanout(settings, app.state.chat, asyncio.get_running_loop())
        app.state.chat_fanout = fanout.start() if settings.chat_fanout else None
        log.info("node %s up; payments at %s", settings.node_id, settings.payments_url)
        try:
            yield
        finally:
            if app.state.chat_fanout is not None:
                app.state.chat_fanout.stop()
            await app.state.ingest.stop()
            app.state.renewals.stop()
            relay.stop()
            app.state.payments.close()
            engine.dispose()

    app = FastAPI(title="Efir ingest node", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = sessions
    app.state.metrics = metrics
    app.state.alert_hub = install_alert_feed(sessions, AlertHub())
    app.state.chat = ChatService(settings, sessions)
    app.state.edge_guard = EdgeGuard(settings)
    app.state.chat_tokens = HmacTokens(settings.chat_token_secret)
    app.state.loyalty = LoyaltyBook(settings.marts_root)  # the loyalty assets' export, read-only
    redact_url_tokens()  # viewers' and chat sockets' ?token= never reaches uvicorn's logs
    for module in (health, channels, donations, webhooks, chat, subscriptions, gifts, overlays, streams, hls):
        app.include_router(module.router)
    for module in (donation_rules, donation_review):
        app.include_router(module.router)
    app.include_router(recordings.router)  # VODs of past broadcasts
    app.include_router(loyalty.router)  # points, ranks, badges from the loyalty export
    install_interactive_feed(sessions, settings, app.state.alert_hub)  # challenges, moments, widget wake-ups
    app.include_router(interactive.router)  # boosts, requests, challenges, goal, alert settings
    app.include_router(widgets.router)  # goal bar, top donors, request queue overlays (after /alerts)
    app.include_router(sponsorship_routes.router)  # sponsored content: finance records paid invoices
    app.include_router(donate_page.router)  # the viewer's donation form over the donations API
    return app
