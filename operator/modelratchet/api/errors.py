"""Pydantic validation errors as people read them: one line per offending field, with its path."""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydantic import ValidationError

# Union members appear in pydantic's error locations ("float", "literal['live']"); they are not fields.
_UNION_MEMBER = re.compile(r"^(float|int|str|bool|list\[.*\]|dict\[.*\]|literal\[.*\]|function-\w+\[.*\])$")
_PREFIXES = ("Value error, ", "Assertion failed, ")


def field_path(loc: Iterable[int | str], root: str = "") -> str:
    """``('spec', 'metrics', 1, 'threshold')`` -> ``spec.metrics[1].threshold``; ``root`` prefixes it."""
    out = root
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _UNION_MEMBER.match(part):
            out += f".{part}" if out else part
    return out or "(document)"


def validation_problems(exc: ValidationError, root: str = "") -> list[str]:
    """One line per offending field, e.g. ``spec.metrics[1].threshold.type: Input should be 'min', ...``.

    ``root`` names where the validated object sits (``spec`` when only a spec was validated).
    """
    merged: dict[str, list[str]] = {}
    for err in exc.errors(include_url=False):
        message = err["msg"]
        for prefix in _PREFIXES:
            message = message.removeprefix(prefix)
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        messages = merged.setdefault(field_path(err["loc"], root), [])
        if message not in messages:
            messages.append(message)
    return [f"{path}: {' or '.join(messages)}" for path, messages in merged.items()]
