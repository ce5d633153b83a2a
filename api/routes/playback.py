"""A recording's audio for the archive application: its overview and range playback.

``<audio>`` cannot send an ``Authorization`` header, so an authenticated caller
first asks for a link: the audio URL with an expiry and an HMAC of the task id
and expiry under the service's signing key. The link opens that one recording
until it expires, and the file is served with HTTP range requests (a long
recording seeks without being downloaded).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import mimetypes
import time
import uuid

from fastapi import APIRouter, HTTPException, Query, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from api.deps import AUTH_ERRORS, AnyCaller, ServiceDep, errors
from api.overviews import cached_overview
from api.routes.tasks import _task
from api.service import Service

router = APIRouter(prefix="/api/v1/recordings", tags=["archive"])
LINK_LIFETIME_S = 6 * 3600
_locks: dict[str, asyncio.Lock] = {}


class AudioLink(BaseModel):
    url: str = Field(description="Same-origin URL of the audio, valid until ``expires``.")
    expires: int = Field(description="Unix time after which the link is refused.")
    media_type: str


def _signature(key: str, task_id: str, expires: int) -> str:
    message = f"audio:{task_id}:{expires}".encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def _media_type(filename: str) -> str:
    guessed, _ = mimetypes.guess_type(filename)
    return guessed if guessed and guessed.startswith("audio/") else "application/octet-stream"


@router.get(
    "/{task_id}/audio-link", response_model=AudioLink, responses=errors(*AUTH_ERRORS, 404, 422)
)
async def audio_link(task_id: uuid.UUID, _: AnyCaller, service: ServiceDep) -> AudioLink:
    """A time-limited link that plays the stored upload (for ``<audio src>``)."""
    task = await _task(service, task_id)
    expires = int(time.time()) + LINK_LIFETIME_S
    sig = _signature(service.signing_key, str(task_id), expires)
    return AudioLink(
        url=f"/api/v1/recordings/{task_id}/audio?expires={expires}&sig={sig}",
        expires=expires,
        media_type=_media_type(task.filename),
    )


@router.get(
    "/{task_id}/audio",
    response_class=FileResponse,
    responses={
        200: {"content": {"audio/*": {}}, "description": "The stored upload."},
        206: {"content": {"audio/*": {}}, "description": "The requested byte range."},
        **errors(401, 404, 422),
    },
)
async def audio(
    task_id: uuid.UUID,
    service: ServiceDep,
    expires: int = Query(ge=0, le=2**40),
    sig: str = Query(min_length=64, max_length=64),
) -> FileResponse:
    """The stored upload, byte ranges supported; opened by a link from ``audio-link``."""
    expected = _signature(service.signing_key, str(task_id), expires)
    if not hmac.compare_digest(expected.encode(), sig.encode()) or expires < time.time():
        raise HTTPException(401, "this audio link is invalid or has expired: reload the page")
    task = await _task(service, task_id)
    path = service.blobs.path(task.content_sha256)
    if not path.exists():
        raise HTTPException(404, f"the upload of task {task_id} is no longer stored")
    return FileResponse(path, media_type=_media_type(task.filename))


async def ensure_overview(service: Service, sha256: str) -> bytes:
    """:func:`cached_overview` off the event loop, one computation per file at a time."""
    lock = _locks.setdefault(sha256, asyncio.Lock())
    try:
        async with lock:
            path = service.blobs.path(sha256)
            return await asyncio.to_thread(cached_overview, service.settings, path, sha256)
    finally:
        if not lock.locked():
            _locks.pop(sha256, None)


@router.get(
    "/{task_id}/overview",
    responses={
        200: {"content": {"application/json": {}}, "description": "Peaks and spectrogram."},
        **errors(*AUTH_ERRORS, 404, 409, 422),
    },
)
async def overview(task_id: uuid.UUID, _: AnyCaller, service: ServiceDep) -> Response:
    """Waveform peaks (2,000 min/max pairs as signed bytes) and a 64-band spectrogram of
    up to 400 columns (base64 bytes, column after column) of the stored upload."""
    task = await _task(service, task_id)
    if not service.blobs.path(task.content_sha256).exists():
        raise HTTPException(404, f"the upload of task {task_id} is no longer stored")
    try:
        body = await ensure_overview(service, task.content_sha256)
    except Exception as exc:  # libsndfile's errors: an upload that is not audio
        raise HTTPException(409, f"the upload cannot be decoded: {exc}") from None
    return Response(body, media_type="application/json", headers={"Cache-Control": "private"})
