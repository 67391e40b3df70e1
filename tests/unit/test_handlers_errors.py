"""How a reconcile error reads in a Degraded condition: one bounded line, type first."""

from __future__ import annotations

from kubernetes.client.exceptions import ApiException
from modelratchet.handlers import MAX_ERROR_MESSAGE, describe_error


def test_an_api_error_says_its_status_and_the_server_message_only() -> None:
    e = ApiException(status=422, reason="Unprocessable Entity")
    e.body = '{"kind":"Status","message":"Deployment.apps \\"x\\" is invalid: spec.selector: field is immutable"}'
    assert describe_error(e) == (
        'ApiException: 422 Unprocessable Entity: Deployment.apps "x" is invalid: spec.selector: field is immutable'
    )


def test_other_errors_are_one_bounded_line_without_control_characters() -> None:
    text = describe_error(RuntimeError("first line\nsecond\x1b[2J line " + "x" * 5000))
    assert text.startswith("RuntimeError: first line second[2J line xxx")
    assert len(text) == MAX_ERROR_MESSAGE and text.endswith("\u2026")
    assert describe_error(KeyError()) == "KeyError"
    assert describe_error(ValueError("")) == "ValueError"
