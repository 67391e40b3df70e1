"""PromQL templates: substitute model, namespace, checkpoint, window and interval safely.

String values (model, namespace, checkpoint) may only appear inside PromQL string literals, and only
in literals whose meaning is known: a label matcher's value, or label_replace's replacement or regex.
They are escaped for the literal they sit in, so no value can end the literal and change what the query
selects; where Prometheus reads the literal as a regex (``=~``, ``!~``, label_replace's regex) they are
also regex-quoted, so a checkpoint such as ``v1.*`` matches itself only; in label_replace's replacement
``$`` is doubled, so ``$1`` stays text. Anywhere else (a label name, another function's argument) a value
cannot be made safe in general and the placeholder is refused. Durations (window, interval) are generated
by the operator and must match a strict pattern before they are placed into the query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

STRING_PLACEHOLDERS = frozenset({"model", "namespace", "checkpoint"})
DURATION_PLACEHOLDERS = frozenset({"window", "interval"})
PLACEHOLDERS = STRING_PLACEHOLDERS | DURATION_PLACEHOLDERS

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_DURATION = re.compile(r"[0-9]+(ms|s|m|h)")
# Characters RE2 treats specially (Go's regexp.QuoteMeta).
_REGEX_META = frozenset("\\.+*?()|[]{}^$")
_SIMPLE_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


# How Prometheus reads the literal a placeholder sits in: plain text, an RE2 pattern, a $-expanding
# replacement, or something a value cannot be placed in safely (None: a placeholder there is refused).
Context = Literal["text", "regex", "replacement"]
# label_replace(v, dst_label, replacement, src_label, regex): the arguments (from 0) that take a value.
_LABEL_REPLACE_ARGS: dict[int, Context] = {2: "replacement", 4: "regex"}


class TemplateError(ValueError):
    """A query template, or a value for it, that cannot be rendered safely."""


@dataclass(frozen=True)
class _Slot:
    """Where a placeholder sits: its span, its name, and the string literal around it (if any)."""

    start: int
    end: int
    name: str
    quote: str | None  # '"' or "'" when inside a string literal, None in code
    context: Context | None  # how the literal is read; None in code or where no value can be made safe


def _escape_length(template: str, i: int) -> int:
    """Length of the escape sequence starting with the backslash at ``i`` (PromQL's lexer rules)."""
    nxt = template[i + 1 : i + 2]
    if nxt == "x":
        return 4
    if nxt == "u":
        return 6
    if nxt == "U":
        return 10
    if nxt and nxt in "01234567":
        return 4
    return 2


@dataclass
class _Frame:
    """An open bracket in code: ``(`` (with the function it calls and the argument being read), ``{`` or ``[``."""

    bracket: str
    callee: str = ""
    argument: int = 0


def _literal_context(template: str, literal_start: int, frames: list[_Frame]) -> Context | None:
    """How PromQL reads the literal opening at ``literal_start``, from what precedes it and the open brackets."""
    j = literal_start - 1
    while j >= 0 and template[j].isspace():
        j -= 1
    inside = frames[-1] if frames else None
    if inside is None:
        return None
    if inside.bracket == "{" and j >= 0:
        op = template[max(0, j - 1) : j + 1]
        if op in ("=~", "!~"):
            return "regex"
        if op == "!=" or (template[j] == "=" and op not in ("==", "<=", ">=")):
            return "text"
        return None
    if inside.bracket == "(" and inside.callee == "label_replace":
        return _LABEL_REPLACE_ARGS.get(inside.argument)
    return None


def _callee(template: str, paren: int) -> str:
    """The identifier right before an opening parenthesis (a function name), lower-cased."""
    j = paren - 1
    while j >= 0 and template[j].isspace():
        j -= 1
    end = j + 1
    while j >= 0 and (template[j].isalnum() or template[j] in "_:"):
        j -= 1
    return template[j + 1 : end].lower()


def _scan(template: str) -> list[_Slot]:
    """Find the placeholders and, for each, the lexical context PromQL would see it in."""
    matches = {m.start(): m for m in _PLACEHOLDER.finditer(template)}
    slots: list[_Slot] = []
    quote: str | None = None  # the open literal's quote character, if any
    literal_start = 0
    literal_context: Context | None = None
    frames: list[_Frame] = []  # brackets open in code, innermost last
    in_comment = False
    i = 0
    n = len(template)
    while i < n:
        m = matches.get(i)
        if m is not None:
            name = m.group(1)
            if name not in PLACEHOLDERS:
                known = ", ".join("{{ " + p + " }}" for p in sorted(PLACEHOLDERS))
                raise TemplateError(f"unknown placeholder {m.group(0)!r} at offset {i}; known: {known}")
            if quote == "`":
                raise TemplateError(
                    f'{m.group(0)} is inside a `raw` string, where values cannot be escaped; use a "..." string'
                )
            if in_comment:
                raise TemplateError(f"{m.group(0)} is inside a # comment")
            if name in STRING_PLACEHOLDERS and quote is None:
                raise TemplateError(
                    f'{m.group(0)} must be inside a quoted string, e.g. {name}="{{{{ {name} }}}}", '
                    "so its value cannot change the query"
                )
            if name in STRING_PLACEHOLDERS and literal_context is None:
                raise TemplateError(
                    f"{m.group(0)} at offset {i} is in a string that is neither a label matcher's value "
                    '(label="...", !=, =~, !~) nor label_replace\'s replacement or regex; a value cannot be '
                    "substituted safely there"
                )
            slots.append(_Slot(i, m.end(), name, quote, literal_context if quote is not None else None))
            i = m.end()
            continue
        c = template[i]
        if in_comment:
            in_comment = c != "\n"
        elif quote is None:
            if c in "\"'`":
                quote, literal_start = c, i
                literal_context = _literal_context(template, i, frames)
            elif c == "#":
                in_comment = True
            elif c == "(":
                frames.append(_Frame("(", _callee(template, i)))
            elif c in "{[":
                frames.append(_Frame(c))
            elif c in ")}]":
                if frames:
                    frames.pop()
            elif c == "," and frames:
                frames[-1].argument += 1
        elif c == "\\" and quote != "`":
            length = _escape_length(template, i)
            if any(j in matches for j in range(i + 1, i + length)):
                raise TemplateError(f"a placeholder must not follow a backslash escape (offset {i})")
            i += length
            continue
        elif c == quote:
            quote = None
        elif c == "\n" and quote != "`":
            raise TemplateError(f"newline inside a quoted string at offset {i}")
        i += 1
    if quote is not None:
        raise TemplateError(f"unterminated {quote}-quoted string starting at offset {literal_start}")
    leftover = _PLACEHOLDER.sub("", template)
    if "{{" in leftover or "}}" in leftover:
        raise TemplateError("unbalanced '{{' or '}}' in template")
    return slots


def escape_string(value: str, quote: str = '"') -> str:
    """``value`` escaped for the inside of a PromQL ``"..."`` or ``'...'`` literal (Go escapes)."""
    out: list[str] = []
    for ch in value:
        if "\ud800" <= ch <= "\udfff":
            raise TemplateError(f"value {value!r} is not valid Unicode (lone surrogate)")
        if ch == "\\" or ch == quote:
            out.append("\\" + ch)
        elif ch in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[ch])
        elif not ch.isprintable():
            code = ord(ch)
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    return "".join(out)


def quote_regex(value: str) -> str:
    """``value`` as an RE2 pattern that matches exactly itself."""
    return "".join("\\" + ch if ch in _REGEX_META else ch for ch in value)


def check_template(template: str) -> None:
    """Raise TemplateError when the template cannot be rendered safely, whatever the values."""
    _scan(template)


def render_query(template: str, *, model: str, namespace: str, checkpoint: str, window: str, interval: str) -> str:
    """The PromQL query for these values; raises TemplateError on an unsafe template or duration."""
    for label, duration in (("window", window), ("interval", interval)):
        if not _DURATION.fullmatch(duration):
            raise TemplateError(f"{label} {duration!r} is not a PromQL duration such as 300s")
    values = {"model": model, "namespace": namespace, "checkpoint": checkpoint, "window": window, "interval": interval}
    pieces: list[str] = []
    pos = 0
    for slot in _scan(template):
        pieces.append(template[pos : slot.start])
        value = values[slot.name]
        if slot.quote is not None:
            if slot.context == "regex":
                value = quote_regex(value)
            elif slot.context == "replacement":
                value = value.replace("$", "$$")  # Go's Regexp.Expand: $$ is a literal $
            value = escape_string(value, slot.quote)
        pieces.append(value)
        pos = slot.end
    pieces.append(template[pos:])
    return "".join(pieces)
