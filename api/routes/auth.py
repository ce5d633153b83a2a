"""``POST /api/v1/auth/login`` and ``/password``: a password for a short-lived access token.

Each attempt is taken from the account's counter, then the address's, before the
password is checked (:mod:`api.guard`); past ``LOGIN_MAX_ATTEMPTS`` (four times that
for an address) within ``LOGIN_LOCKOUT_SECONDS`` the answer is 429 without a check,
even for the right password. The counters live in the database (or Redis, where
configured), so every API process shares them. Every check, and every refusal, is
audited in a transaction of its own.
"""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field
from sqlalchemy import select

from api.deps import AnyCaller, ServiceDep, audit, client_address, errors
from api.guard import HashPoolFull
from api.security import MIN_PASSWORD, TokenClaims, issue_token
from api.service import Service
from sinks.store import AuditEntry, User

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
ADDRESS_FACTOR = 4  # an address may fail for a few accounts before it is locked out
BUSY_RETRY_S = "1"


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int = Field(description="Seconds until the token expires.")
    role: str


def _too_many(retry_after: int | str, reason: str) -> HTTPException:
    return HTTPException(429, reason, headers={"Retry-After": str(retry_after)})


async def _checked(service: Service, username: str, password: str, address: str) -> User | None:
    """The user if ``password`` is theirs (and they are enabled), after taking an attempt
    from the account's and the address's counters; 429 when either is used up or the
    hashing pool is full. Every outcome is audited."""
    settings = service.settings
    limit, window = settings.LOGIN_MAX_ATTEMPTS, settings.LOGIN_LOCKOUT_SECONDS
    account, source = f"account:{username}", f"address:{address}"
    attempts = service.attempts
    taken = await attempts.take(account, limit, window)
    if taken.allowed:
        by_address = await attempts.take(source, limit * ADDRESS_FACTOR, window)
        if not by_address.allowed:
            await attempts.give_back(account)
            taken = by_address
    if not taken.allowed:
        await audit(service, AuditEntry(action="login.locked", actor=username, address=address,
                                        ok=False))  # fmt: skip
        raise _too_many(taken.retry_after, "too many failed logins: try again later")
    async with service.db.session() as session:
        user = await session.scalar(select(User).where(User.username == username))
    try:
        valid = await service.passwords.verify(password, user.password_hash if user else None)
    except HashPoolFull as exc:
        for key in (account, source):  # nothing was checked: the attempt is not a failure
            await attempts.give_back(key)
        await audit(service, AuditEntry(action="login.busy", actor=username, address=address,
                                        ok=False))  # fmt: skip
        raise _too_many(BUSY_RETRY_S, str(exc)) from None
    ok = valid and user is not None and not user.disabled
    await audit(service, AuditEntry(action="login", actor=username, address=address, ok=ok))
    if not ok:
        return None
    for key in (account, source):
        await attempts.give_back(key)
    return user


def _wrong(reason: str) -> HTTPException:
    return HTTPException(401, reason, headers={"WWW-Authenticate": "Bearer"})


@router.post("/login", response_model=TokenResponse, responses=errors(400, 401, 422, 429))
async def login(body: LoginRequest, request: Request, service: ServiceDep) -> TokenResponse:
    """Exchange a username and password for a JWT access token."""
    user = await _checked(service, body.username, body.password, client_address(request))
    if user is None:
        raise _wrong("wrong username or password")
    return _token_for(service, user)


def _token_for(service: Service, user: User) -> TokenResponse:
    lifetime = timedelta(minutes=service.settings.ACCESS_TOKEN_EXPIRE_MINUTES)
    claims = TokenClaims(user_id=user.id, username=user.username, version=user.token_version)
    token = issue_token(claims, user.role, service.signing_key, lifetime)
    return TokenResponse(
        access_token=token, expires_in=int(lifetime.total_seconds()), role=user.role
    )


class PasswordChange(BaseModel):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=MIN_PASSWORD, max_length=1024)


@router.post("/password", response_model=TokenResponse, responses=errors(400, 401, 403, 422, 429))
async def change_password(
    body: PasswordChange, request: Request, principal: AnyCaller, service: ServiceDep
) -> TokenResponse:
    """Change the caller's password. Every token issued before is revoked; a new one is
    returned. The current password is checked like a login (and locked out like one).
    API keys have no password (403)."""
    if principal.kind != "user":
        raise HTTPException(403, "an API key has no password to change")
    address = client_address(request)
    user = await _checked(service, principal.name, body.current_password, address)
    if user is None:
        raise _wrong("wrong current password")
    try:
        new_hash = await service.passwords.hash(body.new_password)
    except HashPoolFull as exc:
        raise _too_many(BUSY_RETRY_S, str(exc)) from None
    async with service.db.session() as session:
        changed = await session.get(User, user.id)
        if changed is None:
            raise _wrong("the user no longer exists")
        changed.password_hash = new_hash
        changed.token_version += 1
        session.add(AuditEntry(action="user.password", actor=principal.name, address=address,
                               target=principal.name))  # fmt: skip
    service.identities.invalidate(changed.id)
    return _token_for(service, changed)
