"""The user behind a token, checked on every request against the store.

A token names a user id, a username and a token version. The user must still
exist under that name, be enabled and be at the same version: removing a user,
disabling one, ``users logout-all`` or a password change revokes their tokens.
The answer is cached for ``IDENTITY_CACHE_SECONDS`` (a few seconds), so a burst
of requests costs one query; a change made through this process drops its entry
at once, a change made elsewhere (the CLI, another API process) is seen within
the cache's lifetime.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import select

from api.security import TokenClaims
from sinks.store import Database, User

MAX_ENTRIES = 10_000


class Revoked(Exception):  # noqa: N818 - reads as a state, like the token's
    """The token's user is gone, disabled, or has moved to a newer token version."""


@dataclass(frozen=True, slots=True)
class Identity:
    """A user's row as far as authentication needs it."""

    user_id: int
    username: str
    role: str
    disabled: bool
    version: int


class IdentityCache:
    """Users by id, each kept for ``ttl`` seconds (``0``: always asked).

    Only users found are kept: an id reused by a user added elsewhere is seen at once,
    and only tokens that can be signed, so never ids chosen at will, reach a lookup.
    """

    def __init__(self, db: Database, ttl: float) -> None:
        self.db = db
        self.ttl = ttl
        self._entries: dict[int, tuple[float, Identity]] = {}

    async def lookup(self, user_id: int) -> Identity | None:
        now = time.monotonic()
        cached = self._entries.get(user_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self.db.session() as session:
            user = await session.scalar(select(User).where(User.id == user_id))
        if user is None:
            self._entries.pop(user_id, None)
            return None
        found = Identity(user.id, user.username, user.role, user.disabled, user.token_version)
        if self.ttl > 0:
            if len(self._entries) >= MAX_ENTRIES:  # tokens naming random ids cannot grow it
                self._entries.clear()
            self._entries[user_id] = (now + self.ttl, found)
        return found

    def invalidate(self, user_id: int) -> None:
        """Forget a user whose row this process has just changed."""
        self._entries.pop(user_id, None)

    async def check(self, claims: TokenClaims) -> Identity:
        """The user a token speaks for, or :class:`Revoked` saying why not."""
        identity = await self.lookup(claims.user_id)
        if identity is None or identity.username != claims.username:
            raise Revoked("the token's user no longer exists")
        if identity.disabled:
            raise Revoked("the user is disabled")
        if identity.version != claims.version:
            raise Revoked("the token was revoked (logout or password change)")
        return identity
