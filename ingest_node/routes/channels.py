"""Channels: created and listed by an admin only (a streamer's channel is where donations go)."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, status
from sqlalchemy.exc import IntegrityError

from ingest_node.audit import audit
from ingest_node.deps import AdminDep, SessionDep
from ingest_node.models import Channel
from ingest_node.schemas import ChannelIn, ChannelOut

router = APIRouter(prefix="/api/v1/channels", tags=["channels"])


@router.post("", status_code=status.HTTP_201_CREATED)
def create_channel(body: ChannelIn, session: SessionDep, actor: AdminDep) -> ChannelOut:
    try:
        with session.begin():
            if session.get(Channel, body.channel_id) is not None:
                raise HTTPException(status.HTTP_409_CONFLICT, f"channel {body.channel_id!r} already exists")
            channel = Channel(channel_id=body.channel_id, name=body.name)
            session.add(channel)
            audit(session, actor=actor, action="channel.created", entity=f"channel:{body.channel_id}")
    except IntegrityError:  # created concurrently by another request or node
        raise HTTPException(status.HTTP_409_CONFLICT, f"channel {body.channel_id!r} already exists") from None
    return ChannelOut.model_validate(channel, from_attributes=True)


@router.get("")
def list_channels(session: SessionDep, actor: AdminDep) -> list[ChannelOut]:
    channels = session.execute(sa.select(Channel).order_by(Channel.channel_id)).scalars()
    return [ChannelOut.model_validate(c, from_attributes=True) for c in channels]
