"""A thin MLflow model registry client over its REST API (2.x and 3.x), with the project's bounded HTTP.

Only what a rollout needs: read an alias, set a version's tag, set an alias. Each call is one request that ends
by its deadline and reads at most ``max_bytes`` (modelratchet.wire); every failure is a RegistryError whose
reason is a condition reason and whose message is safe to show (the server's text is cleaned and cut).
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from modelratchet import __version__
from modelratchet.metrics.addresses import redact
from modelratchet.wire import ConnectError, Deadline, DeadlineExceeded, ResponseTooLarge, clean, fetch

from .core import ResolvedVersion

API = "/api/2.0/mlflow"
USER_AGENT = f"modelratchet/{__version__}"


class RegistryError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class MlflowConnection:
    """Where the tracking server is and how to talk to it."""

    base: str  # tracking URI without a trailing slash
    token: str | None = None
    timeout: float = 5.0
    max_bytes: int = 1024 * 1024

    def _call(self, method: str, path: str, *, query: dict[str, str] | None = None, body: Any = None) -> Any:
        url = f"{self.base}{API}/{path}" + (f"?{urlencode(query)}" if query else "")
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        where = redact(self.base)
        try:
            reply = fetch(
                url,
                deadline=Deadline(self.timeout),
                max_bytes=self.max_bytes,
                method=method,
                body=data,
                headers=headers,
            )
        except ConnectError as e:
            raise RegistryError("RegistryUnavailable", f"MLflow at {where} unreachable: {clean(str(e))}") from e
        except DeadlineExceeded as e:
            raise RegistryError("RegistryUnavailable", f"MLflow at {where} did not answer in {self.timeout:g}s") from e
        except ResponseTooLarge as e:
            raise RegistryError("RegistryError", f"MLflow at {where}: {e}") from e
        except (OSError, http.client.HTTPException) as e:
            raise RegistryError("RegistryUnavailable", f"MLflow at {where}: {clean(str(e))}") from e
        text = reply.body.decode("utf-8", "replace")
        try:
            answer = json.loads(text) if text.strip() else {}
        except ValueError:
            answer = None
        if reply.status >= 400 or not isinstance(answer, dict):
            detail = answer.get("message") if isinstance(answer, dict) else None
            code = answer.get("error_code") if isinstance(answer, dict) else None
            reason = {401: "RegistryUnauthorized", 403: "RegistryForbidden"}.get(reply.status, "RegistryError")
            if path == "registered-models/alias" and method == "GET" and reply.status in (400, 404):
                reason = "AliasNotFound"  # MLflow 3 answers 400 INVALID_PARAMETER_VALUE for an unknown alias
            elif reply.status == 404 or code == "RESOURCE_DOES_NOT_EXIST":
                reason = "NotFound"
            elif reply.status >= 500:
                reason = "RegistryUnavailable"
            said = clean(str(detail or text or reply.reason))
            raise RegistryError(reason, f"MLflow at {where}: {reply.status} {clean(reply.reason)}: {said}")
        return answer

    def alias(self, model: str, alias: str) -> ResolvedVersion:
        """The version ``alias`` names and its storage location (MLflow 3's storage_location, else source)."""
        answer = self._call("GET", "registered-models/alias", query={"name": model, "alias": alias})
        mv = answer.get("model_version")
        if not isinstance(mv, dict) or not mv.get("version"):
            raise RegistryError("RegistryError", f"MLflow answered no model_version for {model}@{alias}")
        location = mv.get("storage_location") or mv.get("source")
        if not isinstance(location, str) or not location:
            raise RegistryError("RegistryError", f"MLflow model {model!r} version {mv['version']} has no source")
        aliases = tuple(a for a in mv.get("aliases") or [] if isinstance(a, str))
        return ResolvedVersion(version=str(mv["version"]), checkpoint=location[:1024], aliases=aliases)

    def tags(self, model: str, version: str) -> dict[str, str]:
        """The version's tags as they are now."""
        answer = self._call("GET", "model-versions/get", query={"name": model, "version": version})
        mv = answer.get("model_version")
        tags = mv.get("tags") if isinstance(mv, dict) else None
        return {t["key"]: t.get("value", "") for t in tags or [] if isinstance(t, dict) and "key" in t}

    def set_tag(self, model: str, version: str, key: str, value: str) -> None:
        self._call(
            "POST", "model-versions/set-tag", body={"name": model, "version": version, "key": key, "value": value}
        )

    def set_alias(self, model: str, alias: str, version: str) -> None:
        self._call("POST", "registered-models/alias", body={"name": model, "alias": alias, "version": version})
