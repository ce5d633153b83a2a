"""Credentials: Argon2 password hashes, JWT access tokens, API keys, the signing key.

Tokens are HS256 JWTs signed with ``SECRET_KEY``; decoding accepts HS256 only,
so ``alg: none`` and an RS/HS confusion (a public key used as an HMAC secret)
are refused by construction. API keys are 256-bit random secrets shown once;
only their SHA-256 is stored (a fast hash is right for a random secret; a slow
one is for passwords people choose).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from config.private import make_private
from config.settings import Settings

ALGORITHM = "HS256"
ISSUER = "heritage-audio"
KEY_PREFIX = "ha_"
MIN_PASSWORD = 10
"""Shortest password accepted (CLI and API)."""
_hasher = PasswordHasher()
# Verified against when the user does not exist, so timing does not reveal usernames.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


class InvalidToken(Exception):  # noqa: N818 - the name says what it is
    """The token is missing, malformed, expired, or not signed by us."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a logged-in user or an API key, with its role."""

    name: str
    role: str
    kind: str  # "user" | "key"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    """Constant-work check: an unknown user costs as much as a wrong password."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def signing_key(settings: Settings) -> str:
    """``SECRET_KEY``; outside production without one, a key kept in the data directory.

    The generated key is shared by every process using the same data directory
    (API, workers), and survives restarts, so tokens stay valid.
    """
    if settings.SECRET_KEY is not None and settings.SECRET_KEY.get_secret_value():
        return settings.SECRET_KEY.get_secret_value()
    path = settings.HERITAGE_DATA_DIR / "secret_key"
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write_private(path, secrets.token_urlsafe(48))
    make_private(path)  # one an earlier version (or an operator's copy) left readable
    return path.read_text(encoding="ascii").strip()


def _write_private(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(text)
    try:
        os.link(temp, path)  # first writer wins when processes race
    except FileExistsError:
        pass
    finally:
        temp.unlink()


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What an access token asserts: which user (id and name) at which token version.

    The role is not trusted from the token: each request reads it, with the version,
    from the user's row (see :mod:`api.identity`).
    """

    user_id: int
    username: str
    version: int


def issue_token(
    claims: TokenClaims, role: str, key: str, lifetime: timedelta, now: datetime | None = None
) -> str:
    now = now or datetime.now(UTC)
    payload: dict[str, Any] = {
        "sub": str(claims.user_id),
        "name": claims.username,
        "ver": claims.version,
        "role": role,  # informative for clients; the server reads the role from the store
        "iss": ISSUER,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(payload, key, algorithm=ALGORITHM)


def decode_token(token: str, key: str) -> TokenClaims:
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "iss", "name", "ver"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from None
    subject, name, version = claims["sub"], claims["name"], claims["ver"]
    if not (isinstance(subject, str) and subject.isdigit() and isinstance(name, str)):
        raise InvalidToken("token names no user")
    if not isinstance(version, int) or isinstance(version, bool):
        raise InvalidToken("token has no version")
    return TokenClaims(user_id=int(subject), username=name, version=version)


def new_api_key() -> tuple[str, str, str]:
    """A fresh key: (the secret to show once, its lookup prefix, its stored hash)."""
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    return secret, secret[: len(KEY_PREFIX) + 8], hash_api_key(secret)


def hash_api_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def api_key_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_api_key(secret), stored_hash)


def api_key_prefix(secret: str) -> str:
    return secret[: len(KEY_PREFIX) + 8]
