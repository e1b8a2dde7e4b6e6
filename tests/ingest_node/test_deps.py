"""The typed route dependencies live in `ingest_node.deps`: the streamer check (`StreamerDep`) is one
function there, used by every route that only the channel's owner (or the admin) may call, whichever
router it is on; no router module defines or re-exports its own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from ingest_node import deps
from ingest_node.routes import channels, interactive


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def _streamer_routes(module: Any) -> set[tuple[str, str]]:
    return {
        (method, route.path)
        for route in module.router.routes
        if isinstance(route, APIRoute) and deps.require_streamer in set(_calls(route.dependant))
        for method in route.methods
    }


def test_streamer_routes_use_the_one_dependency_in_deps() -> None:
    assert ("PUT", "/api/v1/channels/{channel_id}/game") in _streamer_routes(channels)
    owner_only = _streamer_routes(interactive)
    assert ("PUT", "/api/v1/channels/{channel_id}/requests/settings") in owner_only
    assert ("PUT", "/api/v1/channels/{channel_id}/alert-settings") in owner_only
    for module in (channels, interactive):
        assert getattr(module, "StreamerDep", deps.StreamerDep) is deps.StreamerDep  # imported, not made
        assert not hasattr(module, "streamer") and not hasattr(module, "require_streamer")
