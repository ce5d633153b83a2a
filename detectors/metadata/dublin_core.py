"""Dublin Core (DCMES 1.1) records: the 15 elements as JSON and as OAI-PMH ``oai_dc`` XML.

Values come from three places, in order of precedence: what the curator supplied,
what the file carries (BWF ``bext``, RIFF ``INFO``), and what the analysis
generates (type, format, extent, subject, description, identifier). Every element
is a list, since each may repeat.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

from lxml import etree

ELEMENTS = (
    "title", "creator", "subject", "description", "publisher", "contributor", "date", "type",
    "format", "identifier", "source", "language", "relation", "coverage", "rights",
)  # fmt: skip
DC_NS = "http://purl.org/dc/elements/1.1/"
OAI_DC_NS = "http://www.openarchives.org/OAI/2.0/oai_dc/"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
OAI_DC_SCHEMA_LOCATION = f"{OAI_DC_NS} http://www.openarchives.org/OAI/2.0/oai_dc.xsd"
SCHEMA_DIR = Path(str(resources.files("detectors") / "metadata" / "schemas"))
# Canonical schema locations and the shipped copies they resolve to (no network).
SCHEMA_FILES = {
    "http://www.openarchives.org/OAI/2.0/oai_dc.xsd": "oai_dc.xsd",
    "http://dublincore.org/schemas/xmls/simpledc20021212.xsd": "simpledc20021212.xsd",
    "http://www.w3.org/2001/03/xml.xsd": "xml.xsd",
    "http://www.w3.org/2001/xml.xsd": "xml.xsd",
}
CATEGORY_SUBJECTS = {
    "folk_music": "Folk music",
    "classical_music": "Classical music",
    "opera": "Opera",
    "spoken_word": "Spoken word",
    "historical_speech": "Historical speeches",
    "religious_chant": "Religious chant",
}
MIME_TYPES = {
    "WAV": "audio/wav", "WAVEX": "audio/wav", "RF64": "audio/wav", "W64": "audio/x-w64",
    "FLAC": "audio/flac", "OGG": "audio/ogg", "MP3": "audio/mpeg", "AIFF": "audio/aiff",
    "CAF": "audio/x-caf", "AU": "audio/basic",
}  # fmt: skip
# Characters XML 1.0 cannot carry (C0 controls except tab, newline, carriage return).
_BWF_DATE = re.compile(r"(\d{4})[-_:. ](\d{2})[-_:. ](\d{2})")
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def mime_type(container: str | None, codec: str | None = None) -> str:
    """The MIME type of a libsndfile container name (``WAV``, ``FLAC``, ...)."""
    if container == "OGG" and codec == "OPUS":
        return "audio/ogg; codecs=opus"
    return MIME_TYPES.get(container or "", "application/octet-stream")


def iso_duration(seconds: float) -> str:
    """ISO 8601 duration (``PT1M2.5S``), the usual form of a Dublin Core extent."""
    minutes, secs = divmod(round(seconds, 3), 60)
    hours, minutes = divmod(int(minutes), 60)
    out = "PT" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    return out + f"{secs:g}S"


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    values = value if isinstance(value, list | tuple) else [value]
    return [_XML_INVALID.sub("", str(v)).strip() for v in values if str(v).strip()]


def check_curator_fields(curator: dict[str, Any] | None) -> dict[str, list[str]]:
    """Curator-supplied elements as lists; an unknown element name is a ``ValueError``."""
    fields = {}
    for name, value in (curator or {}).items():
        if name not in ELEMENTS:
            raise ValueError(
                f"unknown Dublin Core element {name!r} (expected one of {', '.join(ELEMENTS)})"
            )
        if values := _as_list(value):
            fields[name] = values
    return fields


def w3cdtf_date(value: str | None) -> str | None:
    """A BWF or RIFF date as ``YYYY-MM-DD`` (W3CDTF, as DCMI recommends for ``dc:date``).

    EBU Tech 3285 lets ``OriginationDate`` separate its fields with ``-``, ``_``,
    ``:``, a space or ``.``; anything that is not such a date is kept as it is.
    """
    if not value:
        return None
    match = _BWF_DATE.fullmatch(value.strip())
    return "-".join(match.groups()) if match else value.strip()


def embedded_fields(chunks: dict[str, Any]) -> dict[str, list[str]]:
    """Elements the file itself declares in its BWF ``bext`` and RIFF ``INFO`` chunks."""
    info = chunks.get("info") or {}
    bext = chunks.get("bext") or {}
    found: dict[str, list[str]] = {
        "title": _as_list(info.get("title")),
        "creator": _as_list(info.get("artist")),
        "subject": _as_list(info.get("subject")) + _as_list(info.get("keywords")),
        "description": _as_list(info.get("comment")) + _as_list(bext.get("description")),
        "date": _as_list(w3cdtf_date(bext.get("originator_date") or info.get("created_date"))),
        "rights": _as_list(info.get("copyright")),
        "source": _as_list(info.get("source")),
        "contributor": _as_list(info.get("engineer")) + _as_list(bext.get("originator")),
        "identifier": _as_list(bext.get("originator_ref")),
    }
    return {k: v for k, v in found.items() if v}


def build_record(
    generated: dict[str, list[str]],
    embedded: dict[str, list[str]],
    curator: dict[str, list[str]],
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Merge per element: the curator's value wins, then the file's, then the generated one."""
    elements: dict[str, list[str]] = {}
    sources: dict[str, str] = {}
    for name in ELEMENTS:
        for source, values in (("curator", curator), ("embedded", embedded),
                               ("generated", generated)):  # fmt: skip
            if values.get(name):
                elements[name], sources[name] = list(values[name]), source
                break
        else:
            elements[name] = []
    return elements, sources


def to_oai_dc(
    elements: dict[str, list[str]],
    language: str | None = None,
    localized: frozenset[str] = frozenset(),
) -> str:
    """The record as an ``oai_dc:dc`` XML document (UTF-8 text with declaration).

    ``language`` (the record's ``dc:language``) is set as ``xml:lang`` on the
    ``localized`` elements only: the curator's text, not the generated English.
    """
    root = etree.Element(
        f"{{{OAI_DC_NS}}}dc",
        nsmap={"oai_dc": OAI_DC_NS, "dc": DC_NS, "xsi": XSI_NS},
        attrib={f"{{{XSI_NS}}}schemaLocation": OAI_DC_SCHEMA_LOCATION},
    )
    for name in ELEMENTS:
        for value in elements.get(name, []):
            child = etree.SubElement(root, f"{{{DC_NS}}}{name}")
            child.text = _XML_INVALID.sub("", value)
            if language and name in localized and name in ("title", "description", "subject"):
                child.set("{http://www.w3.org/XML/1998/namespace}lang", language)
    text: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return text.decode("utf-8")


class _ShippedSchemas(etree.Resolver):  # type: ignore[misc]
    """Resolves the canonical schema locations to the copies shipped in ``schemas/``."""

    def resolve(self, system_url: str, public_id: str, context: object) -> Any:
        del public_id
        name = SCHEMA_FILES.get(system_url) or (
            Path(system_url).name if Path(system_url).parent == SCHEMA_DIR else None
        )
        if name is None:
            raise ValueError(f"schema {system_url!r} is not shipped (no network access)")
        return self.resolve_filename(str(SCHEMA_DIR / name), context)


def oai_dc_schema() -> etree.XMLSchema:
    """The OAI-DC schema, built from the shipped files only."""
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    parser.resolvers.add(_ShippedSchemas())
    document = etree.parse(str(SCHEMA_DIR / "oai_dc.xsd"), parser)
    return etree.XMLSchema(document)


def validate_oai_dc(xml: str | bytes) -> list[str]:
    """Schema errors of an ``oai_dc`` document; an empty list means it is valid."""
    data = xml.encode("utf-8") if isinstance(xml, str) else xml
    try:
        parser = etree.XMLParser(no_network=True, resolve_entities=False)
        document = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        return [f"not well-formed: {exc}"]
    schema = oai_dc_schema()
    if schema.validate(document):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]
