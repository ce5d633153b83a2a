"""``WS /ws/events``: live events as JSON text messages, one event per message.

Protocol:
- Filters in the query string: ``installation``, ``source``, ``channel``, ``types``
  (comma-separated; ``types`` takes ``speech.*`` prefixes). Or, at any time, a
  message ``{"action": "subscribe", "source": [...], "types": [...], ...}`` that
  replaces the filter.
- On connect (and after each subscribe) the client first receives a snapshot:
  the latest retained event per source and channel (status, speech state,
  speaker, category, level), then live events as they happen.
- Each client has a bounded queue; a client that cannot keep up loses its
  oldest events (counted), never slowing the others.
- Outside ``development`` (and in development on a non-loopback address, unless
  started with ``--insecure-open``) the client authenticates with ``?token=<JWT>``, an
  ``Authorization: Bearer`` header or ``X-API-Key``; otherwise it is closed with 1008.
- Close codes: 1000 the stream ended; 1007 a message that is not JSON;
  1008 an invalid filter or action, or no valid credentials (the reason says
  which); 1012 server restart.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from fastapi import APIRouter, HTTPException, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from api.deps import authenticate
from sinks.bus import Subscription
from sinks.hub import EventFilter, FilterError
from stream.runtime import Runtime

logger = logging.getLogger(__name__)
router = APIRouter()

CLOSE_NORMAL = 1000
CLOSE_INVALID_PAYLOAD = 1007
CLOSE_POLICY = 1008


class ProtocolError(Exception):
    """The client broke the protocol; carries the close code and reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason[:120]  # a close reason must fit in 123 bytes


def _filter_message(text: str) -> EventFilter:
    try:
        message: Any = json.loads(text)
    except json.JSONDecodeError:
        raise ProtocolError(CLOSE_INVALID_PAYLOAD, "messages must be JSON") from None
    if not isinstance(message, dict) or message.get("action") != "subscribe":
        raise ProtocolError(CLOSE_POLICY, 'expected {"action": "subscribe", ...}')
    try:
        return EventFilter.parse(message)
    except FilterError as exc:
        raise ProtocolError(CLOSE_POLICY, str(exc)) from None


async def _read_filters(websocket: WebSocket, runtime: Runtime, sub: Subscription) -> None:
    """Apply subscribe messages until the client leaves or breaks the protocol."""
    while True:
        accepts = _filter_message(await websocket.receive_text())
        sub.restart(accepts, runtime.live.snapshot(accepts))


async def _authorised(websocket: WebSocket) -> bool:
    """A token (``?token=`` or ``Authorization``) or API key is required, except on a
    development server on a loopback address (or opened with ``--insecure-open``)."""
    if websocket.app.state.live_open:
        return True
    service = getattr(websocket.app.state, "service", None)
    try:
        if service is None:
            raise HTTPException(401, "the service is starting")
        await authenticate(websocket, service, websocket.query_params.get("token"))
    except HTTPException as exc:
        await websocket.close(CLOSE_POLICY, f"unauthorised: {exc.detail}"[:120])
        return False
    return True


@router.websocket("/ws/events")
async def events(websocket: WebSocket) -> None:
    """Stream live events to one client until it leaves or the runtime stops."""
    runtime: Runtime = websocket.app.state.runtime
    await websocket.accept()
    if not await _authorised(websocket):
        return
    try:
        accepts = EventFilter.parse(websocket.query_params)
    except FilterError as exc:
        await websocket.close(CLOSE_POLICY, str(exc)[:120])
        return
    client = websocket.client
    name = f"ws:{client.host}:{client.port}" if client else "ws:unknown"
    # Subscribe, then snapshot, with no await between: nothing is missed or doubled.
    sub = runtime.bus.subscribe(name, runtime.config.queues.client_events, accepts, "websocket")
    sub.restart(accepts, runtime.live.snapshot(accepts))
    runtime.metrics.ws_clients.inc()
    reader = asyncio.create_task(_read_filters(websocket, runtime, sub))

    def reader_done(task: asyncio.Task[None]) -> None:
        # The client left or broke the protocol: end the send loop (it reads why).
        if not task.cancelled():
            task.exception()  # retrieved here, so asyncio does not log it as lost
        runtime.bus.unsubscribe(sub)

    reader.add_done_callback(reader_done)
    try:
        while (item := await sub.get()) is not None:
            await websocket.send_text(item.json)
        await _close_after(reader, websocket)
    except (WebSocketDisconnect, RuntimeError):
        pass  # the client went away mid-send
    finally:
        reader.cancel()
        runtime.bus.unsubscribe(sub)
        runtime.metrics.ws_clients.dec()
        if sub.dropped:
            logger.info("%s: %d events dropped (slow client)", name, sub.dropped)


async def _close_after(reader: asyncio.Task[None], websocket: WebSocket) -> None:
    """The subscription ended: say why with the right close code."""
    if websocket.application_state != WebSocketState.CONNECTED:
        return
    if not reader.done():  # the runtime stopped: the stream is over
        await websocket.close(CLOSE_NORMAL, "stream ended")
        return
    error = None if reader.cancelled() else reader.exception()
    if isinstance(error, ProtocolError):
        await websocket.close(error.code, error.reason)
