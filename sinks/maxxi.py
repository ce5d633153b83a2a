"""MAXXI connector: the archive export of a result, its atomic storage, the signed callback.

See docs/MAXXI.md for the export format, the archive layout and the signature.
Nothing here computes audio features: it reshapes a finished result document.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx
from lxml import etree
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from config.settings import Settings, load_settings

logger = logging.getLogger(__name__)

EXPORT_SCHEMA = "heritage-audio.maxxi-export/1"
EXPORT_NS = "urn:heritage-audio:maxxi-export:1"
SIGNATURE_HEADER = "X-Heritage-Signature"
DELIVERY_HEADER = "X-Heritage-Delivery"
TASK_HEADER = "X-Heritage-Task-Id"
SIGNATURE_TOLERANCE_S = 300
ARCHIVE_FILE_MODE = 0o644
ARCHIVE_DIR_MODE = 0o755
"""The archive is read by MAXXI's own tools: modes set explicitly, whatever the umask
(the API runs with a private one, config/private.py)."""
MEDIA_TYPES = {"json": "application/json", "xml": "application/xml"}
ExportFormat = Literal["json", "xml"]


class CallbackError(RuntimeError):
    """MAXXI refused the callback (a 4xx) or stayed unreachable through every retry."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _validated_task_id(task_id: str) -> str:
    """The task id as a canonical UUID string: it names a file, so nothing else may pass."""
    try:
        return str(uuid.UUID(str(task_id)))
    except ValueError:
        raise ValueError(f"task id {task_id!r} is not a UUID") from None


def sign(body: bytes, secret: bytes, timestamp: int) -> str:
    """The signature header value: ``t=<unix seconds>,v1=<hex HMAC-SHA256>``.

    The MAC covers ``b"<timestamp>." + body``, so a captured request cannot be
    replayed later with a fresh timestamp.
    """
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(
    body: bytes,
    headers: Mapping[str, str],
    secret: str | bytes,
    *,
    tolerance_s: int = SIGNATURE_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """True if ``headers`` carry a valid, fresh signature of exactly ``body``.

    For MAXXI's receiving end (and our tests): pass the raw request body, before
    any JSON parsing, and the request headers (any capitalisation).
    """
    value = next((v for k, v in headers.items() if k.lower() == SIGNATURE_HEADER.lower()), None)
    if not value:
        return False
    pairs = [tuple(p.strip().split("=", 1)) for p in value.split(",") if "=" in p]
    stamps = [v for k, v in pairs if k == "t"]
    try:
        timestamp = int(stamps[0]) if len(stamps) == 1 else None
    except ValueError:
        return False
    if timestamp is None:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    key = secret.encode() if isinstance(secret, str) else secret
    expected = sign(body, key, timestamp).split("v1=", 1)[1]
    # Several v1 values may appear while a key rotates; any valid one passes.
    return any(hmac.compare_digest(expected, v) for k, v in pairs if k == "v1")


def _retryable(exc: BaseException) -> bool:
    """Connection problems and 5xx answers are worth another try; 3xx and 4xx are not."""
    return isinstance(exc, CallbackError) and (exc.status is None or exc.status >= 500)


class MAXXIConnector:
    """Formats results for MAXXI, archives them and notifies MAXXI's callback URL."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        max_attempts: int = 5,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        timeout_s: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings or load_settings()
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.timeout_s = timeout_s
        self._clock = clock

    # -- export -------------------------------------------------------------------------------

    def format_for_maxxi(self, result: dict[str, Any]) -> dict[str, Any]:
        """The export of one result document (``heritage-audio.maxxi-export/1``, docs/MAXXI.md)."""
        sections = result.get("results", {})
        metadata = sections.get("metadata_generation") or {}
        dublin_core = metadata.get("dublin_core") or {}
        return {
            "schema": EXPORT_SCHEMA,
            "task_id": _validated_task_id(result["task_id"]),
            "exported_at": datetime.fromtimestamp(self._clock(), UTC).isoformat(),
            "metadata_schema": self.settings.MAXXI_METADATA_SCHEMA,
            "audio_info": result.get("audio_info", {}),
            "dublin_core": dublin_core.get("elements", {}),
            "oai_dc": dublin_core.get("oai_dc"),
            "heritage": _heritage(sections.get("heritage_classification")),
            "speakers": _speakers(sections.get("speaker_recognition")),
            "technical": _technical(metadata.get("technical")),
            "cultural_tags": metadata.get("cultural_tags"),
            "provenance": result.get("provenance", {}),
        }

    def serialize(self, data: dict[str, Any], fmt: str | None = None) -> tuple[bytes, str]:
        """The export as bytes and its media type, in ``fmt`` or ``MAXXI_OUTPUT_FORMAT``."""
        chosen = fmt or self.settings.MAXXI_OUTPUT_FORMAT
        if chosen == "json":
            text = json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True)
            return text.encode("utf-8"), MEDIA_TYPES["json"]
        if chosen == "xml":
            return to_xml(data), MEDIA_TYPES["xml"]
        raise ValueError(f"unknown MAXXI output format {chosen!r} (expected json or xml)")

    # -- archive ------------------------------------------------------------------------------

    def archive_path(self, data: dict[str, Any], fmt: str | None = None) -> Path:
        """``<MAXXI_OUTPUT_DIR>/<yyyy>/<mm>/<task_id>.<json|xml>``, dated by the export time."""
        chosen = fmt or self.settings.MAXXI_OUTPUT_FORMAT
        task_id = _validated_task_id(data["task_id"])
        when = datetime.fromisoformat(data["exported_at"]).astimezone(UTC)
        return self.settings.MAXXI_OUTPUT_DIR / f"{when:%Y}" / f"{when:%m}" / f"{task_id}.{chosen}"

    def store_in_archive(self, data: dict[str, Any]) -> Path:
        """Write the export atomically and return its path.

        The bytes go to a hidden temporary file in the target directory
        (``.<task_id>.<random>.tmp``), are fsynced, then renamed over the final name
        with ``os.replace`` and the directory is fsynced: a reader sees either no
        file or the whole file, even across a crash or power loss.
        """
        body, _ = self.serialize(data)
        target = self.archive_path(data)
        created = [p for p in (target.parent, *target.parent.parents) if not p.exists()]
        target.parent.mkdir(parents=True, exist_ok=True)
        for directory in created:
            directory.chmod(ARCHIVE_DIR_MODE)
        fd, temp_name = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.stem}.", suffix=".tmp"
        )
        try:
            # mkstemp makes the file 0600; the archive is read by MAXXI's own tools.
            os.fchmod(fd, ARCHIVE_FILE_MODE)
            with os.fdopen(fd, "wb") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temp_name, target)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
        _fsync_directory(target.parent)
        logger.info("MAXXI export of task %s stored at %s", data["task_id"], target)
        return target

    # -- callback -----------------------------------------------------------------------------

    def _secret(self) -> bytes:
        secret = self.settings.MAXXI_CALLBACK_SECRET or self.settings.SECRET_KEY
        if secret is None or not secret.get_secret_value():
            raise ValueError("MAXXI callback needs MAXXI_CALLBACK_SECRET or SECRET_KEY to sign")
        return secret.get_secret_value().encode()

    def _retrying(self) -> Retrying:
        return Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=wait_exponential(multiplier=self.backoff_s, max=self.max_backoff_s),
            retry=retry_if_exception(_retryable),
            before_sleep=_log_retry,
            reraise=True,
        )

    def notify(self, task_id: str, payload: dict[str, Any]) -> int | None:
        """POST ``payload`` as JSON to ``MAXXI_CALLBACK_URL``, signed; the final status code.

        Retries connection errors and 5xx answers with exponential backoff; a 3xx or
        4xx answer, or the last failed attempt, raises :class:`CallbackError`. Returns
        ``None`` when no callback URL is configured. Every attempt carries the same
        ``X-Heritage-Delivery`` id, so MAXXI can drop a duplicate.
        """
        url = self.settings.MAXXI_CALLBACK_URL
        if not url:
            return None
        task_id = _validated_task_id(task_id)
        body = self.callback_body(payload)
        self._secret()  # no key to sign with: say so before any attempt
        delivery = str(uuid.uuid4())
        with httpx.Client(timeout=self.timeout_s) as client:
            for attempt in self._retrying():
                with attempt:
                    headers = self._headers(body, task_id, delivery)
                    try:
                        response = client.post(url, content=body, headers=headers)
                    except httpx.TransportError as exc:
                        raise CallbackError(f"MAXXI callback unreachable: {exc}") from exc
                    status = _delivered(response, task_id)
                    logger.info("MAXXI notified of task %s (%d)", task_id, status)
                    return status
        raise AssertionError("unreachable: tenacity reraises the last error")

    def callback_body(self, payload: dict[str, Any]) -> bytes:
        """The callback's JSON body: the same bytes for the same payload, every attempt."""
        return json.dumps(payload, ensure_ascii=False, sort_keys=True).encode("utf-8")

    async def send_once(
        self, client: httpx.AsyncClient, task_id: str, payload: dict[str, Any], delivery: str
    ) -> int:
        """One signed POST of ``payload`` to ``MAXXI_CALLBACK_URL``; its 2xx status code.

        Raises :class:`CallbackError` for anything else (``status`` is None when MAXXI
        could not be reached); the outbox decides whether to try again.
        """
        url = self.settings.MAXXI_CALLBACK_URL
        if not url:
            raise CallbackError("MAXXI_CALLBACK_URL is not set")
        task_id = _validated_task_id(task_id)
        body = self.callback_body(payload)
        headers = self._headers(body, task_id, delivery)
        try:
            response = await client.post(url, content=body, headers=headers)
        except httpx.TransportError as exc:
            raise CallbackError(f"MAXXI callback unreachable: {exc}") from exc
        return _delivered(response, task_id)

    def _headers(self, body: bytes, task_id: str, delivery: str) -> dict[str, str]:
        """A callback's headers, signed now (each attempt carries a fresh timestamp)."""
        return {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(body, self._secret(), int(self._clock())),
            DELIVERY_HEADER: delivery,
            TASK_HEADER: task_id,
        }


def _delivered(response: httpx.Response, task_id: str) -> int:
    """The 2xx status of a callback's answer; :class:`CallbackError` for anything else."""
    if not 200 <= response.status_code < 300:  # a redirect is not a delivery
        raise CallbackError(
            f"MAXXI callback for task {task_id} answered {response.status_code}",
            response.status_code,
        )
    return response.status_code


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    delay = state.next_action.sleep if state.next_action else 0.0
    logger.warning(
        "MAXXI callback attempt %d failed (%s); retrying in %.1f s",
        state.attempt_number, exc, delay,
    )  # fmt: skip


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _heritage(section: dict[str, Any] | None) -> dict[str, Any] | None:
    if not section:
        return None
    keys = ("predicted_category", "confidence", "scores", "timeline")
    return {k: section.get(k) for k in keys}


def _speakers(section: dict[str, Any] | None) -> dict[str, Any] | None:
    """Who spoke and for how long; the segment-level timeline stays in the full result."""
    if not section:
        return None
    speakers = section.get("speakers") or {}
    return {
        "speakers_detected": section.get("speakers_detected"),
        "dominant_speaker": section.get("dominant_speaker"),
        "interruptions": section.get("interruptions"),
        "speakers": [
            {
                "label": label,
                "name": s.get("name"),
                "speaking_time": s.get("speaking_time"),
                "turns": s.get("turns"),
            }
            for label, s in speakers.items()
        ],
    }


def _technical(section: dict[str, Any] | None) -> dict[str, Any] | None:
    if not section:
        return None
    loudness = section.get("loudness") or {}
    return {
        "duration": section.get("duration"),
        "sample_rate": section.get("sample_rate"),
        "bit_depth": section.get("bit_depth"),
        "channels": section.get("channels"),
        "container": section.get("container"),
        "codec": section.get("codec"),
        "integrated_lufs": loudness.get("integrated_lufs"),
        "loudness_range_lu": loudness.get("loudness_range_lu"),
        "true_peak_dbtp": loudness.get("true_peak_dbtp"),
        "noise_floor_dbfs": section.get("noise_floor_dbfs"),
        "effective_bandwidth_hz": section.get("effective_bandwidth_hz"),
    }


# -- XML ----------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _add_fields(parent: Any, tag: str, values: dict[str, Any] | None) -> Any:
    """``<tag><field name="...">value</field>...</tag>`` for the scalar values of a dict."""
    node = etree.SubElement(parent, f"{{{EXPORT_NS}}}{tag}")
    if values is None:
        node.set("present", "false")
        return node
    for name, value in values.items():
        if isinstance(value, dict | list):
            continue
        field = etree.SubElement(node, f"{{{EXPORT_NS}}}field", name=name)
        field.text = _text(value)
    return node


def to_xml(data: dict[str, Any]) -> bytes:
    """The export as XML: summary elements in ``urn:heritage-audio:maxxi-export:1`` and the
    Dublin Core record as an embedded ``oai_dc:dc`` element."""
    ns = f"{{{EXPORT_NS}}}"
    root = etree.Element(f"{ns}maxxiExport", nsmap={None: EXPORT_NS}, schema=data["schema"])
    for tag, key in (("taskId", "task_id"), ("exportedAt", "exported_at")):
        etree.SubElement(root, f"{ns}{tag}").text = _text(data[key])
    _add_fields(root, "audioInfo", data.get("audio_info"))
    metadata = etree.SubElement(root, f"{ns}metadata", schema=data.get("metadata_schema", ""))
    if data.get("oai_dc"):
        parser = etree.XMLParser(no_network=True, resolve_entities=False, remove_blank_text=True)
        metadata.append(etree.fromstring(data["oai_dc"].encode("utf-8"), parser))
    heritage = data.get("heritage")
    node = _add_fields(root, "heritage", heritage)
    for category, score in ((heritage or {}).get("scores") or {}).items():
        etree.SubElement(node, f"{ns}score", category=category).text = _text(score)
    speakers = data.get("speakers")
    node = _add_fields(root, "speakers", speakers)
    for speaker in (speakers or {}).get("speakers", []):
        etree.SubElement(node, f"{ns}speaker", {k: _text(v) for k, v in speaker.items()})
    _add_fields(root, "technical", data.get("technical"))
    era = ((data.get("cultural_tags") or {}).get("recording_era")) or None
    tags = data.get("cultural_tags")
    node = _add_fields(root, "culturalTags", tags)
    if era:
        etree.SubElement(node, f"{ns}recordingEra", era=era["era"], years=era["years"],
                         confidence=_text(era["confidence"]))  # fmt: skip
    provenance = data.get("provenance") or {}
    node = _add_fields(root, "provenance", provenance)
    for name, digest in (provenance.get("models") or {}).items():
        etree.SubElement(node, f"{ns}model", name=name).text = _text(digest)
    body: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return body
