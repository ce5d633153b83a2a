"""People and machine keys, managed by an admin from the archive application:
``/api/v1/users`` and ``/api/v1/keys`` (what ``heritage-audio users``/``keys`` do, audited)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from api.deps import AUTH_ERRORS, Admin, ServiceDep, client_address, errors
from api.security import hash_password, new_api_key
from sinks.store import ApiKey, AuditEntry, User

router = APIRouter(prefix="/api/v1", tags=["admin"])
Role = Literal["admin", "operator", "viewer", "integration"]
NAME = r"^[A-Za-z0-9_.@-]{1,64}$"
MIN_PASSWORD = 10


class UserOut(BaseModel):
    username: str
    role: str
    disabled: bool
    created_at: datetime


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(pattern=NAME)
    role: Role
    password: str = Field(min_length=MIN_PASSWORD, max_length=1024)


class KeyOut(BaseModel):
    name: str
    role: str
    prefix: str
    revoked: bool
    created_at: datetime
    last_used_at: datetime | None


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME)
    role: Role = "integration"


class NewKey(KeyOut):
    secret: str = Field(description="The key itself: shown this once, stored only hashed.")


def _user(u: User) -> UserOut:
    return UserOut(username=u.username, role=u.role, disabled=u.disabled, created_at=u.created_at)


def _key(k: ApiKey) -> KeyOut:
    return KeyOut(
        name=k.name,
        role=k.role,
        prefix=k.prefix,
        revoked=k.revoked,
        created_at=k.created_at,
        last_used_at=k.last_used_at,
    )


@router.get("/users", response_model=list[UserOut], responses=errors(*AUTH_ERRORS))
async def list_users(_: Admin, service: ServiceDep) -> list[UserOut]:
    """Everyone who can sign in, by name."""
    async with service.db.session() as session:
        return [_user(u) for u in await session.scalars(select(User).order_by(User.username))]


@router.post(
    "/users",
    status_code=201,
    response_model=UserOut,
    responses=errors(*AUTH_ERRORS, 400, 409, 422),
)
async def add_user(
    body: UserIn, request: Request, principal: Admin, service: ServiceDep
) -> UserOut:
    """Add a person with a role and a first password."""
    async with service.db.session() as session:
        if await session.scalar(select(User).where(User.username == body.username)):
            raise HTTPException(409, f"user {body.username!r} exists")
        user = User(username=body.username, password_hash=hash_password(body.password),
                    role=body.role)  # fmt: skip
        session.add(user)
        session.add(AuditEntry(action="user.added", actor=principal.name,
                               address=client_address(request), target=body.username))  # fmt: skip
        await session.flush()
        return _user(user)


@router.delete("/users/{username}", status_code=204, responses=errors(*AUTH_ERRORS, 404, 409))
async def remove_user(
    username: str, request: Request, principal: Admin, service: ServiceDep
) -> Response:
    """Remove a person (not the admin doing it)."""
    async with service.db.session() as session:
        user = await session.scalar(select(User).where(User.username == username))
        if user is None:
            raise HTTPException(404, f"no user {username[:64]!r}")
        if principal.kind == "user" and user.username == principal.name:
            raise HTTPException(409, "you cannot remove yourself")
        user_id = user.id
        await session.delete(user)
        session.add(AuditEntry(action="user.deleted", actor=principal.name,
                               address=client_address(request), target=username))  # fmt: skip
    service.identities.invalidate(user_id)  # their tokens stop working now, not in a while
    return Response(status_code=204)


@router.get("/keys", response_model=list[KeyOut], responses=errors(*AUTH_ERRORS))
async def list_keys(_: Admin, service: ServiceDep) -> list[KeyOut]:
    """API keys (never their secrets), by name."""
    async with service.db.session() as session:
        return [_key(k) for k in await session.scalars(select(ApiKey).order_by(ApiKey.name))]


@router.post(
    "/keys", status_code=201, response_model=NewKey, responses=errors(*AUTH_ERRORS, 400, 409, 422)
)
async def create_key(
    body: KeyIn, request: Request, principal: Admin, service: ServiceDep
) -> NewKey:
    """Create a key for a machine; its secret is in this answer only."""
    async with service.db.session() as session:
        if await session.scalar(select(ApiKey).where(ApiKey.name == body.name)):
            raise HTTPException(409, f"key {body.name!r} exists")
        secret, prefix, key_hash = new_api_key()
        key = ApiKey(name=body.name, prefix=prefix, key_hash=key_hash, role=body.role)
        session.add(key)
        session.add(AuditEntry(action="key.created", actor=principal.name,
                               address=client_address(request), target=body.name))  # fmt: skip
        await session.flush()
        return NewKey(**_key(key).model_dump(), secret=secret)


@router.delete("/keys/{name}", status_code=204, responses=errors(*AUTH_ERRORS, 404))
async def revoke_key(
    name: str, request: Request, principal: Admin, service: ServiceDep
) -> Response:
    """Revoke a key: it stops working at once."""
    async with service.db.session() as session:
        key = await session.scalar(select(ApiKey).where(ApiKey.name == name))
        if key is None:
            raise HTTPException(404, f"no key {name[:64]!r}")
        key.revoked = True
        session.add(AuditEntry(action="key.revoked", actor=principal.name,
                               address=client_address(request), target=name))  # fmt: skip
    return Response(status_code=204)
