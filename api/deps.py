"""Request dependencies: the service, the caller's identity and role, documented errors."""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from sqlalchemy import select
from starlette.requests import HTTPConnection

from api.identity import Revoked
from api.security import InvalidToken, Principal, api_key_matches, api_key_prefix, decode_token
from api.service import Service
from sinks.store import ApiKey, AuditEntry
from sinks.store.models import utcnow

KEY_USE_AUDIT_EVERY = timedelta(minutes=1)


class ErrorResponse(BaseModel):
    """Every error answer: a human-readable reason."""

    detail: str


_DESCRIPTIONS = {
    400: "The request body cannot be parsed.",
    401: "Missing, expired or invalid credentials.",
    403: "The caller's role may not do this.",
    404: "No such task.",
    409: "The task is not in a state that allows this.",
    413: "The upload is larger than the configured limit.",
    415: "Not multipart/form-data, or not a recognised audio file.",
    422: "Invalid input; the reason names it.",
    429: "Too many failed logins, or too many logins at once; retry after the given delay.",
    503: "The database or another dependency is unavailable; retry after the given delay.",
    507: "Storage full: the server has no room to store this; retry later.",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error statuses a route can answer (503 and 507
    always: any request may write, if only to the audit log)."""
    return {
        code: {"model": ErrorResponse, "description": _DESCRIPTIONS[code]}
        for code in sorted({*codes, 503, 507})
    }


AUTH_ERRORS = (401, 403)
BEARER = HTTPBearer(
    auto_error=False, bearerFormat="JWT", description="An access token from /api/v1/auth/login."
)
API_KEY = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="A key from `heritage-audio keys create`."
)


def service_of(request: Request) -> Service:
    service: Service | None = getattr(request.app.state, "service", None)
    if service is None:
        raise HTTPException(503, "the analysis service is starting", headers={"Retry-After": "5"})
    return service


def client_address(request: HTTPConnection) -> str:
    return request.client.host if request.client else "unknown"


def in_networks(address: str, networks: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for spec in filter(None, (part.strip() for part in networks.split(","))):
        if ip in ipaddress.ip_network(spec, strict=False):
            return True
    return False


def _unauthorized(reason: str) -> HTTPException:
    return HTTPException(401, reason, headers={"WWW-Authenticate": "Bearer"})


async def audit(service: Service, entry: AuditEntry) -> None:
    """Record ``entry`` in a transaction of its own, committed whatever the request does next."""
    async with service.db.session() as session:
        session.add(entry)


async def _from_api_key(service: Service, secret: str, address: str) -> Principal:
    async with service.db.session() as session:
        rows = await session.scalars(
            select(ApiKey).where(ApiKey.prefix == api_key_prefix(secret), ApiKey.revoked.is_(False))
        )
        key = next((k for k in rows if api_key_matches(secret, k.key_hash)), None)
        if key is not None:
            now = utcnow()
            if key.last_used_at is None or now - key.last_used_at > KEY_USE_AUDIT_EVERY:
                key.last_used_at = now
                session.add(AuditEntry(action="key.used", actor=key.name, address=address))
            return Principal(name=key.name, role=key.role, kind="key")
    # Raised outside the lookup's transaction, which the error would roll back.
    await audit(
        service,
        AuditEntry(
            action="key.rejected", actor="?", address=address, ok=False,
            detail=f"prefix {api_key_prefix(secret)!r}",
        ),
    )  # fmt: skip
    raise _unauthorized("invalid API key")


async def authenticate(
    request: HTTPConnection, service: Service, token: str | None = None
) -> Principal:
    """The caller, from ``Authorization: Bearer <jwt>``, ``X-API-Key``, or ``token``.

    A token's user is looked up (briefly cached): a removed, disabled or logged-out
    user's token is refused, and the role is the user's current one.
    """
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials:
        token = credentials.strip()
    api_key = request.headers.get("x-api-key")
    if api_key is not None:  # even empty: a key that is sent must be right, token or not
        return await _from_api_key(service, api_key, client_address(request))
    if not token:
        raise _unauthorized("authentication required: a Bearer token or an X-API-Key")
    try:
        claims = decode_token(token, service.signing_key)
        identity = await service.identities.check(claims)
    except (InvalidToken, Revoked) as exc:
        raise _unauthorized(f"invalid token: {exc}") from None
    return Principal(name=identity.username, role=identity.role, kind="user")


def require(*roles: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting the given roles (every role when none are given)."""

    async def dependency(
        request: Request,
        _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
        _key: Annotated[str | None, Security(API_KEY)],
    ) -> Principal:
        # The two parameters only declare the schemes in OpenAPI (each route's
        # "security": a Bearer token or an X-API-Key); authenticate() reads the headers.
        principal = await authenticate(request, service_of(request))
        if roles and principal.role not in roles:
            raise HTTPException(403, f"role {principal.role!r} may not do this")
        return principal

    return dependency


ANY_ROLE = require()
CAN_SUBMIT = require("admin", "operator", "integration")
ADMIN = require("admin")
MAXXI = require("admin", "integration")

ServiceDep = Annotated[Service, Depends(service_of)]
AnyCaller = Annotated[Principal, Depends(ANY_ROLE)]
Submitter = Annotated[Principal, Depends(CAN_SUBMIT)]
Admin = Annotated[Principal, Depends(ADMIN)]
MaxxiCaller = Annotated[Principal, Depends(MAXXI)]
