"""PromQL templates: substitution, escaping and the placements that are refused."""

from __future__ import annotations

import re

import pytest
from modelratchet.metrics.templates import (
    TemplateError,
    check_template,
    escape_string,
    quote_regex,
    render_query,
)

HOSTILE = [
    'v1"} or vector(1) or foo{a="',
    "v1' or vector(1) or foo{a='",
    "back\\slash",
    'trailing\\"',
    "\\",
    "line\nbreak\r\ttab",
    "nul\x00bell\x07del\x7f",
    "ünïcødé ✓ 模型 \U0001f680",
    "\u2028sep\u00a0nbsp",
    "v1.*|.+",
    "{{ checkpoint }}",
    "$1 ${1}",
]


def render(template: str, checkpoint: str = "v1", **kw: str) -> str:
    values = {"model": "fraud", "namespace": "ml-prod", "window": "300s", "interval": "30s"} | kw
    return render_query(template, checkpoint=checkpoint, **values)


def go_unquote(body: str, quote: str) -> str:
    """Decode a PromQL "..." / '...' literal body the way Prometheus's lexer and strutil.Unquote do."""
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        assert c != quote, f"unescaped quote in {body!r}"
        assert c != "\n", f"raw newline in {body!r}"
        if c != "\\":
            out.append(c)
            i += 1
            continue
        e = body[i + 1]
        simple = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\", quote: quote}
        if e in simple:
            out.append(simple[e])
            i += 2
        elif e in "uU":
            width = 4 if e == "u" else 8
            out.append(chr(int(body[i + 2 : i + 2 + width], 16)))
            i += 2 + width
        else:
            raise AssertionError(f"escape \\{e} in {body!r} is not one Prometheus accepts here")
    return "".join(out)


def test_substitutes_every_placeholder_with_optional_spaces() -> None:
    q = render(
        'sum(rate(x{model="{{model}}",namespace="{{ namespace }}",checkpoint="{{  checkpoint  }}"}[{{window}}]))'
        " / {{ interval }}"
    )
    assert q == 'sum(rate(x{model="fraud",namespace="ml-prod",checkpoint="v1"}[300s])) / 30s'


def test_placeholder_can_be_part_of_a_literal_and_repeat() -> None:
    q = render('x{checkpoint="ckpt-{{ checkpoint }}-{{ checkpoint }}"}', checkpoint="a")
    assert q == 'x{checkpoint="ckpt-a-a"}'


def test_template_without_placeholders_is_unchanged() -> None:
    assert render("sum(up)") == "sum(up)"


@pytest.mark.parametrize("checkpoint", HOSTILE)
@pytest.mark.parametrize("quote", ['"', "'"])
def test_hostile_values_stay_inside_their_literal(checkpoint: str, quote: str) -> None:
    prefix = f"x{{checkpoint={quote}"
    q = render(prefix + "{{ checkpoint }}" + quote + "}", checkpoint=checkpoint)
    assert q.startswith(prefix) and q.endswith(quote + "}")
    body = q[len(prefix) : -2]
    assert "\n" not in q
    assert go_unquote(body, quote) == checkpoint


@pytest.mark.parametrize("checkpoint", HOSTILE)
def test_regex_matchers_match_the_value_literally(checkpoint: str) -> None:
    q = render('x{checkpoint=~"{{ checkpoint }}", b!~ "{{ model }}"}', checkpoint=checkpoint)
    body = q[len('x{checkpoint=~"') : q.index('", b!~')]
    pattern = go_unquote(body, '"')
    # RE2 and Python agree on backslash-quoted metacharacters; Prometheus anchors the pattern.
    assert re.fullmatch(pattern, checkpoint, re.DOTALL)
    assert not re.fullmatch(pattern, checkpoint + "x", re.DOTALL)
    assert q.endswith('b!~ "fraud"}')


def test_escape_string_by_quote() -> None:
    assert escape_string("a\"b'c", '"') == "a\\\"b'c"
    assert escape_string("a\"b'c", "'") == "a\"b\\'c"
    assert escape_string("\x00\x1b\u0085") == "\\u0000\\u001b\\u0085"
    assert escape_string("\U000e0001") == "\\U000e0001"


def test_quote_regex_escapes_re2_metacharacters() -> None:
    assert quote_regex("a.b*c+d?e(f)g|h[i]j{k}l^m$n\\o") == "a\\.b\\*c\\+d\\?e\\(f\\)g\\|h\\[i\\]j\\{k\\}l\\^m\\$n\\\\o"


def test_lone_surrogate_is_refused() -> None:
    with pytest.raises(TemplateError, match="surrogate"):
        render('x{c="{{ checkpoint }}"}', checkpoint="a\ud800")


@pytest.mark.parametrize("name", ["checkpoint", "model", "namespace"])
def test_string_placeholder_outside_a_literal_is_refused(name: str) -> None:
    with pytest.raises(TemplateError, match="must be inside a quoted string"):
        check_template(f"x{{{name}={{{{ {name} }}}}}}")


@pytest.mark.parametrize(
    ("template", "match"),
    [
        ('x{c="{{ checkpont }}"}', "unknown placeholder '{{ checkpont }}'"),
        ('x{c="{{ Checkpoint }}"}', "unknown placeholder"),
        ("x{c=`{{ checkpoint }}`}", "raw"),
        ('x # checkpoint "{{ checkpoint }}"', "comment"),
        ('x{c="\\{{ checkpoint }}"}', "backslash"),
        ('x{c="\\x{{ checkpoint }}"}', "backslash"),
        ('x{c="\\u00{{ checkpoint }}"}', "backslash"),
        ('x{c="{{ checkpoint }}}', "unterminated"),
        ('x{c="{{ checkpoint }}\n"}', "newline"),
        ('x{c="{{ checkpoint }"}', "unbalanced"),
    ],
)
def test_unsafe_templates_are_refused(template: str, match: str) -> None:
    with pytest.raises(TemplateError, match=match):
        check_template(template)


def test_quotes_and_hash_inside_literals_and_comments_do_not_confuse_the_scan() -> None:
    template = (
        'x{a="it\'s # not a comment", b=\'say "hi"\', c=`raw \\ "`}  # comment with "quote and \'\n'
        '+ y{checkpoint="{{ checkpoint }}", d="\\"{{ model }}\\""}'
    )
    q = render(template, checkpoint='z"')
    assert q.endswith('+ y{checkpoint="z\\"", d="\\"fraud\\""}')


def test_escaped_quote_before_a_placeholder_is_not_the_end_of_the_literal() -> None:
    q = render('x{c="\\\\{{ checkpoint }}"}', checkpoint='"')
    assert q == 'x{c="\\\\\\""}'


@pytest.mark.parametrize("window", ["300s", "5m", "1h", "250ms", "0s"])
def test_valid_durations(window: str) -> None:
    assert render("rate(x[{{ window }}])", window=window) == f"rate(x[{window}])"


@pytest.mark.parametrize("window", ["", "5", "1.5m", "1h30m", "5m])", "5m] or vector(1", " 5m", "-5s", "5d"])
def test_invalid_durations_are_refused(window: str) -> None:
    with pytest.raises(TemplateError, match="not a PromQL duration"):
        render("rate(x[{{ window }}])", window=window)
    with pytest.raises(TemplateError, match="not a PromQL duration"):
        render("rate(x[5m:{{ interval }}])", interval=window)


def test_durations_are_allowed_inside_literals_too() -> None:
    assert render('label_replace(up, "w", "{{ window }}", "", "")') == 'label_replace(up, "w", "300s", "", "")'


# ------------------------------------------------------------------- literals read as regex or replacement


@pytest.mark.parametrize("checkpoint", HOSTILE)
def test_label_replace_regex_argument_matches_the_value_literally(checkpoint: str) -> None:
    q = render('label_replace(up, "dst", "$1", "checkpoint", "({{ checkpoint }})")', checkpoint=checkpoint)
    body = q[len('label_replace(up, "dst", "$1", "checkpoint", "') : -len('")')]
    pattern = go_unquote(body, '"')
    # Prometheus anchors label_replace's regex as it does a matcher's.
    assert re.fullmatch(pattern, checkpoint, re.DOTALL)
    assert not re.fullmatch(pattern, checkpoint + "x", re.DOTALL)


def test_label_replace_regex_is_found_past_nested_calls_and_selectors() -> None:
    template = (
        'label_replace(sum by (a, b) (rate(x{c="{{ model }}", d="e"}[{{ window }}])), "f", "", "g", "{{ checkpoint }}")'
    )
    q = render(template, checkpoint="v1.*", model="m.*")
    assert q == 'label_replace(sum by (a, b) (rate(x{c="m.*", d="e"}[300s])), "f", "", "g", "v1\\\\.\\\\*")'


@pytest.mark.parametrize("checkpoint", HOSTILE)
def test_label_replace_replacement_keeps_dollars_as_text(checkpoint: str) -> None:
    q = render('label_replace(up, "ckpt", "{{ checkpoint }}", "", "")', checkpoint=checkpoint)
    body = q[len('label_replace(up, "ckpt", "') : -len('", "", "")')]
    replacement = go_unquote(body, '"')
    # Go's Regexp.Expand turns $$ into $ and expands $1 / ${1}; undoing that gives the value back.
    assert re.sub(r"\$\$", "$", replacement) == checkpoint
    assert re.search(r"(?<!\$)\$(?!\$)", replacement.replace("$$", "")) is None


@pytest.mark.parametrize(
    "template",
    [
        'label_replace(up, "{{ checkpoint }}", "x", "", "")',  # destination label name
        'label_replace(up, "dst", "x", "{{ model }}", "")',  # source label name
        'label_join(up, "dst", "{{ checkpoint }}", "a")',
        'count_values("{{ model }}", up)',
        'x{"{{ checkpoint }}"}',  # a quoted metric name
        'x{"{{ checkpoint }}"="v"}',  # a quoted label name
        '"{{ checkpoint }}"',
        'sort_by_label(up, "{{ namespace }}")',
    ],
)
def test_string_placeholders_in_other_literals_are_refused(template: str) -> None:
    with pytest.raises(TemplateError, match="neither a label matcher's value"):
        check_template(template)


def test_durations_may_sit_in_any_literal() -> None:
    assert render('label_join(up, "w", "{{ window }}", "a")') == 'label_join(up, "w", "300s", "a")'
