"""Typed, versioned live events: the contract between detectors and every sink.

Each event is one JSON object (one WebSocket message, one Redis stream entry).
Detectors fill the type-specific fields and the stream position; the pipeline
stamps ``installation_id``, ``source``, ``run_id``, ``seq`` and ``wall_time``
before an event leaves the process (see :func:`stamp`). ``(source, run_id, seq)``
identifies an event: ``run_id`` is new at each start of the daemon, and ``seq``
continues across starts (see :mod:`stream.seq_state`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

SCHEMA_VERSION = 1
"""Bumped on any incompatible change of an event's fields."""

HeritageCategory = Literal[
    "folk_music",
    "classical_music",
    "opera",
    "spoken_word",
    "historical_speech",
    "religious_chant",
    "other",
]
"""The six heritage categories and ``other``: sound that is none of them (a valid answer)."""

HERITAGE_CATEGORIES: tuple[str, ...] = get_args(HeritageCategory)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _EventBase(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        json_schema_serialization_defaults_required=True,
    )

    schema_version: int = Field(SCHEMA_VERSION, alias="schema", description="Event schema version.")
    installation_id: str = Field("", description="Installation that produced the event.")
    source: str = Field("", description="Name of the audio source (device, file, demo).")
    channel: int | None = Field(
        ge=0,
        description="Input channel index within the source; null for source-wide events.",
    )
    run_id: str = Field(
        "",
        description="UUID of the daemon run that produced the event; new at each start.",
    )
    seq: int = Field(
        0,
        ge=0,
        description=(
            "Per-source sequence number, rising by 1 per event and continuing across "
            "restarts; within one run_id a gap means loss."
        ),
    )
    t_start: float = Field(ge=0, description="Start, in stream seconds (sample clock).")
    t_end: float = Field(ge=0, description="End, in stream seconds (sample clock).")
    wall_time: datetime = Field(_EPOCH, description="Wall-clock time (UTC, ISO 8601) of t_start.")

    def to_json(self) -> str:
        """The one serializer shared by every transport."""
        return self.model_dump_json(by_alias=True)


class SpeechStarted(_EventBase):
    """Speech began at ``t_start``; ``t_end`` is where it was confirmed."""

    type: Literal["speech.started"] = "speech.started"


class SpeechEnded(_EventBase):
    """A speech segment ended: it covers ``t_start`` to ``t_end``."""

    type: Literal["speech.ended"] = "speech.ended"
    duration: float = Field(ge=0, description="Segment length in seconds.")


class SpeakerTurn(_EventBase):
    """The speaker ``speaker`` holds the floor from ``t_start`` to ``t_end``.

    A turn is updated while it lasts: later events repeat its ``t_start`` with a new
    ``t_end`` (longer, or shortened once a change of voice is confirmed); the newest
    event of a (source, channel, t_start) is the turn's extent.
    """

    type: Literal["speaker.turn"] = "speaker.turn"
    speaker: str = Field(description="Speaker_N in order of appearance, or an enrolled name.")
    confidence: float = Field(ge=0, le=1)


class HeritageClassified(_EventBase):
    """Heritage category of the audio from ``t_start`` to ``t_end``."""

    type: Literal["heritage.classified"] = "heritage.classified"
    category: HeritageCategory
    confidence: float = Field(ge=0, le=1)
    scores: dict[HeritageCategory, float] = Field(description="Probability per category.")
    model_version: str | None = Field(
        None, description="Version of the classifier that decided (`heritage-audio models`)."
    )


class Level(_EventBase):
    """Signal level of one channel over ``t_start``..``t_end``."""

    type: Literal["level"] = "level"
    rms_dbfs: float = Field(le=0, description="RMS level in dBFS (floor -120).")
    peak_dbfs: float = Field(le=0, description="Sample peak in dBFS (floor -120).")
    clipped: float = Field(ge=0, le=1, description="Fraction of samples at full scale.")


SourceState = Literal["starting", "running", "lost", "recovered", "overrun", "ended", "error"]


class SourceStatus(_EventBase):
    """A change in a source's health: device lost or recovered, overruns, end of file."""

    type: Literal["source.status"] = "source.status"
    state: SourceState
    message: str = Field("", description="Human-readable detail for operators.")
    overflows: int = Field(0, ge=0, description="Input overflows counted so far.")


class Heartbeat(_EventBase):
    """Periodic liveness signal of a source, at ``t_end`` stream seconds."""

    type: Literal["heartbeat"] = "heartbeat"
    uptime_s: float = Field(ge=0, description="Seconds since the process started.")


Event = Annotated[
    SpeechStarted
    | SpeechEnded
    | SpeakerTurn
    | HeritageClassified
    | Level
    | SourceStatus
    | Heartbeat,
    Field(discriminator="type"),
]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
EVENT_TYPES: tuple[str, ...] = tuple(
    model.model_fields["type"].default
    for model in (
        SpeechStarted, SpeechEnded, SpeakerTurn, HeritageClassified, Level, SourceStatus, Heartbeat
    )
)  # fmt: skip
"""Every event ``type``, in the order of the union above."""


def stamp(
    event: Event,
    *,
    installation_id: str,
    source: str,
    seq: int,
    wall_time: datetime,
    run_id: str = "",
) -> Event:
    """Return ``event`` with the fields only the pipeline knows filled in."""
    return event.model_copy(
        update={
            "installation_id": installation_id,
            "source": source,
            "run_id": run_id,
            "seq": seq,
            "wall_time": wall_time,
        }
    )


def parse_event(data: str | bytes) -> Event:
    """Parse one event from JSON, validating it against the models."""
    return EVENT_ADAPTER.validate_json(data)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of an event, as committed in ``schemas/events.schema.json``."""
    schema = EVENT_ADAPTER.json_schema(mode="serialization", by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://heritage-audio.invalid/schemas/events.schema.json"
    schema["title"] = f"heritage-audio live event, schema version {SCHEMA_VERSION}"
    return schema
