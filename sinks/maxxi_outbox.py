"""The MAXXI outbox: every callback is a database row until MAXXI has it.

A completed job adds a ``pending`` row (:func:`enqueue`) holding the export and a
delivery id that every attempt repeats (``X-Heritage-Delivery``, so MAXXI can
drop a duplicate). :class:`OutboxDispatcher` posts due rows, HMAC-signed at each
attempt, and records the outcome on the row:

- a 2xx answer: ``delivered`` (and the task's ``maxxi_notified_at`` is set);
- no answer, a timeout, 5xx, 408 or 429: tried again after a capped exponential
  backoff with jitter (``MAXXI_CALLBACK_BACKOFF_S`` doubling to
  ``MAXXI_CALLBACK_MAX_BACKOFF_S``) until ``MAXXI_CALLBACK_RETRY_FOR_S`` after it
  was queued, then ``dead``;
- any other answer (MAXXI refused it, or redirected): ``dead`` at once.

Dead rows stay until an admin replays them (``POST /api/maxxi/outbox/{id}/replay``),
which makes them ``pending`` again with a fresh retry period. A row is claimed
by moving its ``next_attempt_at`` past the attempt's time limit in one UPDATE, so
several API processes may run dispatchers without posting a row twice at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError, OperationalError

from config.settings import Settings
from sinks.maxxi import CallbackError, MAXXIConnector
from sinks.store import Database, OutboxItem, Task
from sinks.store.models import utcnow

logger = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({408, 429})
"""4xx answers that mean "later", not "never"."""
POLL_S = 1.0
"""Seconds between looks for due callbacks."""
ATTEMPT_TIMEOUT_S = 10.0
BATCH = 50


def retryable(exc: CallbackError) -> bool:
    """Unreachable, 5xx, 408 and 429 are worth another try; other answers are final."""
    return exc.status is None or exc.status >= 500 or exc.status in RETRYABLE_STATUSES


def backoff_s(attempts: int, initial_s: float, max_s: float) -> float:
    """Wait after the ``attempts``-th failure: doubling from ``initial_s``, capped, jittered."""
    ceiling: float = min(max_s, initial_s * 2.0 ** min(attempts - 1, 40))
    return ceiling * random.uniform(0.5, 1.0)


async def enqueue(db: Database, settings: Settings, task_id: str, payload: dict[str, Any]) -> int:
    """Add a pending callback of ``payload`` for ``task_id``; returns its outbox id."""
    now = utcnow()
    item = OutboxItem(
        task_id=task_id,
        delivery_id=str(uuid.uuid4()),
        payload=payload,
        status="pending",
        attempts=0,
        created_at=now,
        retry_until=now + timedelta(seconds=settings.MAXXI_CALLBACK_RETRY_FOR_S),
        next_attempt_at=now,
    )
    async with db.session() as session:
        session.add(item)
    return item.id


class OutboxDispatcher:
    """Posts due outbox rows and records each outcome; :meth:`run` loops until cancelled."""

    def __init__(self, db: Database, settings: Settings, *, poll_s: float = POLL_S) -> None:
        self.db = db
        self.settings = settings
        self.poll_s = poll_s
        self._connector = MAXXIConnector(settings)

    async def run(self) -> None:
        """Deliver what is due every ``poll_s``; a database outage is logged and waited out."""
        while True:
            try:
                await self.deliver_due()
            except (DBAPIError, OperationalError, OSError, TimeoutError) as exc:
                logger.warning("MAXXI outbox: database unavailable (%s); trying again", exc)
            except Exception:
                logger.exception("MAXXI outbox: delivery failed; trying again")
            await asyncio.sleep(self.poll_s)

    async def deliver_due(self) -> int:
        """Attempt every due row once; returns how many were delivered."""
        if not self.settings.MAXXI_CALLBACK_URL:
            return 0
        async with self.db.session() as session:
            ids = list(
                await session.scalars(
                    select(OutboxItem.id)
                    .where(OutboxItem.status == "pending", OutboxItem.next_attempt_at <= utcnow())
                    .order_by(OutboxItem.next_attempt_at)
                    .limit(BATCH)
                )
            )
        delivered = 0
        async with httpx.AsyncClient(timeout=ATTEMPT_TIMEOUT_S) as client:
            for item_id in ids:
                delivered += await self._attempt(client, item_id) == "delivered"
        return delivered

    async def deliver(self, item_id: int) -> str | None:
        """Attempt one row now if it is due; its new status, or None if it was not ours."""
        if not self.settings.MAXXI_CALLBACK_URL:
            return None
        async with httpx.AsyncClient(timeout=ATTEMPT_TIMEOUT_S) as client:
            return await self._attempt(client, item_id)

    async def _attempt(self, client: httpx.AsyncClient, item_id: int) -> str | None:
        item = await self._claim(item_id)
        if item is None:
            return None
        try:
            status = await self._connector.send_once(
                client, item.task_id, item.payload, item.delivery_id
            )
        except CallbackError as exc:
            return await self._failed(item, exc)
        except ValueError as exc:  # no key to sign with: nothing will change by itself
            return await self._failed(item, CallbackError(str(exc), 0))
        now = utcnow()
        async with self.db.session() as session:
            await session.execute(
                update(OutboxItem)
                .where(OutboxItem.id == item.id)
                .values(status="delivered", delivered_at=now, last_status=status, last_error=None)
            )
            await session.execute(
                update(Task).where(Task.id == item.task_id).values(maxxi_notified_at=now)
            )
        logger.info(
            "MAXXI notified of task %s (%d, attempt %d)", item.task_id, status, item.attempts
        )
        return "delivered"

    async def _claim(self, item_id: int) -> OutboxItem | None:
        """Take the row for one attempt (others skip it until the attempt's time is up)."""
        now = utcnow()
        async with self.db.session() as session:
            result = await session.execute(
                update(OutboxItem)
                .where(
                    OutboxItem.id == item_id,
                    OutboxItem.status == "pending",
                    OutboxItem.next_attempt_at <= now,
                )
                .values(
                    next_attempt_at=now + timedelta(seconds=2 * ATTEMPT_TIMEOUT_S),
                    attempts=OutboxItem.attempts + 1,
                )
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                return None
            item = await session.get(OutboxItem, item_id)
            if item is not None:
                session.expunge(item)
            return item

    async def _failed(self, item: OutboxItem, exc: CallbackError) -> str:
        now = utcnow()
        final = not retryable(exc)
        wait = backoff_s(
            item.attempts,
            self.settings.MAXXI_CALLBACK_BACKOFF_S,
            self.settings.MAXXI_CALLBACK_MAX_BACKOFF_S,
        )
        next_at = now + timedelta(seconds=wait)
        dead = final or next_at > item.retry_until
        async with self.db.session() as session:
            await session.execute(
                update(OutboxItem)
                .where(OutboxItem.id == item.id)
                .values(
                    status="dead" if dead else "pending",
                    next_attempt_at=now if dead else next_at,
                    last_status=exc.status,
                    last_error=str(exc)[:2000],
                )
            )
        if dead:
            reason = "refused" if final else f"still failing after {item.attempts} attempt(s)"
            logger.error(
                "MAXXI callback of task %s is a dead letter (%s: %s); an admin can replay "
                "outbox item %d",
                item.task_id,
                reason,
                exc,
                item.id,
            )
            return "dead"
        logger.warning(
            "MAXXI callback of task %s failed (attempt %d: %s); retrying in %.1f s",
            item.task_id,
            item.attempts,
            exc,
            wait,
        )
        return "pending"
