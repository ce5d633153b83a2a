"""``WS /ws/events``: live events as JSON text messages, one event per message."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from stream.runtime import Runtime

logger = logging.getLogger(__name__)
router = APIRouter()


@router.websocket("/ws/events")
async def events(websocket: WebSocket) -> None:
    """Stream every live event to the client until it leaves or the runtime stops."""
    runtime: Runtime = websocket.app.state.runtime
    await websocket.accept()
    client = websocket.client
    name = f"ws:{client.host}:{client.port}" if client else "ws:unknown"
    subscription = runtime.bus.subscribe(name, runtime.config.queues.client_events)
    runtime.metrics.ws_clients.inc()

    async def watch_disconnect() -> None:
        # The client sends nothing we need; reading is how a close is noticed.
        try:
            while True:
                await websocket.receive_text()
        except (WebSocketDisconnect, RuntimeError):
            runtime.bus.unsubscribe(subscription)

    watcher = asyncio.create_task(watch_disconnect())
    try:
        while (item := await subscription.get()) is not None:
            await websocket.send_text(item.json)
        if not watcher.done():  # the runtime ended: a normal close
            await websocket.close(code=1000, reason="stream ended")
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        watcher.cancel()
        runtime.bus.unsubscribe(subscription)
        runtime.metrics.ws_clients.dec()
        if subscription.dropped:
            logger.info("%s: %d events dropped (slow client)", name, subscription.dropped)
