"""``POST /api/v1/auth/login``: a password for a short-lived access token.

Failed logins are counted per account and per address from the audit log
(so every API process shares them); past the limit, the account or address is
refused with 429 for the lockout period, even with the right password.
"""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from api.deps import AnyCaller, ServiceDep, audit, client_address, errors
from api.security import MIN_PASSWORD, TokenClaims, hash_password, issue_token, verify_password
from api.service import Service
from sinks.store import AuditEntry, User
from sinks.store.models import utcnow

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
ADDRESS_FACTOR = 4  # an address may fail for a few accounts before it is locked out


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int = Field(description="Seconds until the token expires.")
    role: str


async def _failures(service: Service, column: str, value: str) -> int:
    since = utcnow() - timedelta(seconds=service.settings.LOGIN_LOCKOUT_SECONDS)
    async with service.db.session() as session:
        count = await session.scalar(
            select(func.count()).where(
                AuditEntry.action == "login",
                AuditEntry.ok.is_(False),
                AuditEntry.at > since,
                getattr(AuditEntry, column) == value,
            )
        )
    return int(count or 0)


@router.post("/login", response_model=TokenResponse, responses=errors(400, 401, 422, 429))
async def login(body: LoginRequest, request: Request, service: ServiceDep) -> TokenResponse:
    """Exchange a username and password for a JWT access token."""
    settings = service.settings
    address = client_address(request)
    limit = settings.LOGIN_MAX_ATTEMPTS
    if (
        await _failures(service, "actor", body.username) >= limit
        or await _failures(service, "address", address) >= limit * ADDRESS_FACTOR
    ):
        async with service.db.session() as session:
            session.add(
                AuditEntry(action="login.locked", actor=body.username, address=address, ok=False)
            )
        raise HTTPException(
            429,
            "too many failed logins: try again later",
            headers={"Retry-After": str(settings.LOGIN_LOCKOUT_SECONDS)},
        )
    async with service.db.session() as session:
        user = await session.scalar(select(User).where(User.username == body.username))
    valid = verify_password(body.password, user.password_hash if user else None)
    ok = valid and user is not None and not user.disabled
    async with service.db.session() as session:
        session.add(AuditEntry(action="login", actor=body.username, address=address, ok=ok))
    if not ok or user is None:
        raise HTTPException(
            401, "wrong username or password", headers={"WWW-Authenticate": "Bearer"}
        )
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
    returned. API keys have no password (403)."""
    if principal.kind != "user":
        raise HTTPException(403, "an API key has no password to change")
    async with service.db.session() as session:
        user = await session.scalar(select(User).where(User.username == principal.name))
    if user is None or not verify_password(body.current_password, user.password_hash):
        await audit(
            service,
            AuditEntry(action="login", actor=principal.name, address=client_address(request),
                       ok=False, detail="password change: wrong current password"),
        )  # fmt: skip
        raise HTTPException(401, "wrong current password", headers={"WWW-Authenticate": "Bearer"})
    new_hash = hash_password(body.new_password)
    async with service.db.session() as session:
        user = await session.get(User, user.id)
        if user is None:
            raise HTTPException(401, "the user no longer exists")
        user.password_hash = new_hash
        user.token_version += 1
        session.add(AuditEntry(action="user.password", actor=principal.name,
                               address=client_address(request), target=principal.name))  # fmt: skip
    service.identities.invalidate(user.id)
    return _token_for(service, user)
