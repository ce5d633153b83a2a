"""Receiving an upload: streamed to disk, size-limited while reading, checked as audio.

Starlette's own form parsing spools the whole body before a route runs, so an
oversize upload would be read in full before it could be refused. Here the
body is parsed as it arrives (python-multipart's streaming parser): the file
part goes straight into a temporary file beside the blob store while its
SHA-256 is computed, and reading stops with 413 the moment the limit is passed
(or at once, when ``Content-Length`` already says it is too big).
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
from fastapi import HTTPException, Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from api.filenames import escaped, normalise
from sinks.store import BlobStore

FILE_FIELD = "audio_file"
MAX_FIELDS_BYTES = 64 * 1024
FLUSH_BYTES = 1 << 20
MAX_RATE = 768_000
MAX_CHANNELS = 64


class UploadRejected(HTTPException):
    """An upload refused with a status and a reason for the client."""


STORAGE_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def storage_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says the disk or quota is full."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in STORAGE_FULL_ERRNOS:
            return True
        if "database or disk is full" in str(seen):  # SQLite's words for it
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class StorageFull(UploadRejected):
    """507: the upload could not be written; nothing of it is kept."""

    def __init__(self) -> None:
        super().__init__(507, "storage full: the upload could not be stored; try again later")


@dataclass
class Upload:
    """A received file (durable under its hash) and the form's other fields."""

    sha256: str
    size: int
    filename: str
    path: Path
    fields: dict[str, str] = field(default_factory=dict)
    original_filename: str = ""  # as the client sent it, escaped (api.filenames.escaped)
    created: bool = False  # the blob is new: a refusal after this point removes it


class _Receiver:
    """Callbacks of the multipart parser: one file part to disk, small fields in memory."""

    def __init__(self, blobs: BlobStore, max_bytes: int) -> None:
        self.blobs = blobs
        self.max_bytes = max_bytes
        self.fields: dict[str, str] = {}
        self.file: tuple[BinaryIO, Path] | None = None
        self.filename = ""
        self.original_filename = ""
        self.size = 0
        self.digest = hashlib.sha256()
        self.pending = bytearray()  # file bytes parsed but not yet hashed and written
        self._field_bytes = 0
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._name: str | None = None
        self._value = bytearray()
        self._is_file = False

    def on_part_begin(self) -> None:
        self._headers = {}
        self._name = None
        self._value = bytearray()
        self._is_file = False

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field = self._header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name")
        if name is None:
            raise UploadRejected(422, "a form part has no name")
        self._name = name.decode("utf-8", "replace")
        if self._name == FILE_FIELD:
            if self.file is not None:
                raise UploadRejected(422, f"send one {FILE_FIELD!r} per request")
            self._is_file = True
            raw = options.get(b"filename", b"upload").decode("utf-8", "replace")
            self.filename = normalise(raw)
            self.original_filename = escaped(raw)
            self.file = self.blobs.incoming()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._is_file:
            self.size += len(chunk)
            if self.size > self.max_bytes:
                raise UploadRejected(413, f"upload exceeds the {self.max_bytes} byte limit")
            self.pending += chunk
            return
        self._field_bytes += len(chunk)
        if self._field_bytes > MAX_FIELDS_BYTES:
            raise UploadRejected(413, "form fields are too large")
        self._value += chunk

    def on_part_end(self) -> None:
        if not self._is_file and self._name is not None:
            try:
                self.fields[self._name] = self._value.decode("utf-8")
            except UnicodeDecodeError:
                raise UploadRejected(422, f"field {self._name!r} is not UTF-8") from None

    def flush(self) -> None:
        """Hash and write what the parser has handed over (off the event loop)."""
        if self.file is not None and self.pending:
            data = bytes(self.pending)
            self.pending.clear()
            self.digest.update(data)
            self.file[0].write(data)

    def discard(self) -> None:
        if self.file is not None:
            BlobStore.discard(*self.file)
            self.file = None


async def receive_upload(
    request: Request,
    blobs: BlobStore,
    max_bytes: int,
    check_fields: Callable[[dict[str, str]], object] | None = None,
) -> Upload:
    """Parse a ``multipart/form-data`` request body into a durable blob and its fields.

    ``check_fields`` (raising ``HTTPException``) runs before the file is kept: a refused
    form leaves nothing behind. Nor does any other refusal: the partial file is removed
    on every way out, and a full disk is 507.
    """
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise UploadRejected(415, "send the audio as multipart/form-data with an 'audio_file' part")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes + MAX_FIELDS_BYTES:
        raise UploadRejected(413, f"upload exceeds the {max_bytes} byte limit")
    receiver = _Receiver(blobs, max_bytes)
    try:
        parser = MultipartParser(boundary, _callbacks(receiver))  # type: ignore[arg-type]
        async for chunk in request.stream():
            parser.write(chunk)
            if len(receiver.pending) >= FLUSH_BYTES:
                # Hashing and disk writes run in a thread: 50 uploads at once must not
                # stall the event loop (and every other request) for their duration.
                await asyncio.to_thread(receiver.flush)
        parser.finalize()
        await asyncio.to_thread(receiver.flush)
        if receiver.file is None:
            raise UploadRejected(422, f"the form has no {FILE_FIELD!r} file part")
        if receiver.size == 0:
            raise UploadRejected(422, "the uploaded file is empty")
        if check_fields is not None:
            check_fields(receiver.fields)
        handle, temp = receiver.file
        handle.flush()
        await asyncio.to_thread(check_audio, temp)
        sha256 = receiver.digest.hexdigest()
        existed = blobs.path(sha256).exists()
        path = await asyncio.to_thread(blobs.commit, handle, temp, sha256)
        receiver.file = None
        return Upload(sha256, receiver.size, receiver.filename, path, receiver.fields,
                      receiver.original_filename, created=not existed)  # fmt: skip
    except MultipartParseError as exc:
        raise UploadRejected(422, f"malformed multipart body ({exc})") from None
    except OSError as exc:
        if storage_full(exc):
            raise StorageFull from None
        raise
    finally:
        receiver.discard()


def _callbacks(receiver: _Receiver) -> dict[str, object]:
    return {
        name: getattr(receiver, name)
        for name in (
            "on_part_begin", "on_part_data", "on_part_end", "on_header_field",
            "on_header_value", "on_header_end", "on_headers_finished",
        )
    }  # fmt: skip


def _reason(exc: Exception) -> str:
    """libsndfile's own words, without the file's path (which names the server's disk)."""
    reason = getattr(exc, "error_string", None)
    return str(reason) if reason else "unreadable"


def check_audio(path: Path) -> None:
    """Refuse what libsndfile cannot decode (415) or what holds no usable audio (422)."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise UploadRejected(415, f"not a recognised audio file ({_reason(exc)})") from None
    if info.frames <= 0:
        raise UploadRejected(422, "the file holds no audio frames")
    if not 1000 <= info.samplerate <= MAX_RATE:
        raise UploadRejected(422, f"unsupported sample rate {info.samplerate} Hz")
    if not 1 <= info.channels <= MAX_CHANNELS:
        raise UploadRejected(422, f"unsupported channel count {info.channels}")
    try:
        with sf.SoundFile(str(path)) as f:
            head = f.read(min(info.frames, 4096), dtype="float32")
            if f.seekable() and info.frames > 4096:
                f.seek(info.frames - 4096)
                tail = f.read(4096, dtype="float32")
                if len(tail) == 0:
                    raise UploadRejected(422, "the file is truncated")
    except sf.LibsndfileError as exc:
        raise UploadRejected(422, f"the audio data cannot be decoded ({_reason(exc)})") from None
    if len(head) == 0 or not np.isfinite(head).any():
        raise UploadRejected(422, "the audio data cannot be decoded")
