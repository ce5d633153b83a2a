"""Configuration errors, worded for the operator who has to fix them."""

from __future__ import annotations

from pydantic import ValidationError


class ConfigError(Exception):
    """Invalid configuration: the message names the key and what is wrong with it."""


def format_validation_error(origin: str, exc: ValidationError) -> str:
    """One line per problem: ``origin: dotted.key: message``."""
    lines = []
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"]) or "(root)"
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"{origin}: {key}: {message}")
    return "\n".join(lines)
