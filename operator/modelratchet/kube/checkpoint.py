"""Read and write the checkpoint field of a pod template (pure dict manipulation)."""

from __future__ import annotations

import copy
from typing import Any

from modelratchet.api.rollout import CheckpointFrom


class CheckpointFieldError(ValueError):
    """The configured container or env var is not in the pod template."""


def _container(template: dict[str, Any], name: str) -> dict[str, Any]:
    containers = (template.get("spec") or {}).get("containers") or []
    for c in containers:
        if c.get("name") == name:
            return dict(c)
    names = ", ".join(repr(c.get("name")) for c in containers) or "none"
    raise CheckpointFieldError(f"container {name!r} not found in the pod template (containers: {names})")


def read_checkpoint(template: dict[str, Any], source: CheckpointFrom) -> str:
    container = _container(template, source.container)
    if source.image:
        image = container.get("image")
        if not image:
            raise CheckpointFieldError(f"container {source.container!r} has no image")
        return str(image)
    for var in container.get("env") or []:
        if var.get("name") == source.env:
            if "value" not in var or var.get("valueFrom"):
                raise CheckpointFieldError(
                    f"env var {source.env!r} of container {source.container!r} must have a literal value"
                )
            return str(var["value"])
    raise CheckpointFieldError(f"env var {source.env!r} not found in container {source.container!r}")


def with_checkpoint(template: dict[str, Any], source: CheckpointFrom, checkpoint: str) -> dict[str, Any]:
    """A copy of the pod template with the checkpoint written into the configured field."""
    out = copy.deepcopy(template)
    read_checkpoint(out, source)  # same errors as reading
    for c in out["spec"]["containers"]:
        if c.get("name") != source.container:
            continue
        if source.image:
            c["image"] = checkpoint
        else:
            for var in c["env"]:
                if var.get("name") == source.env:
                    var["value"] = checkpoint
    return out


def apply_patch(source: CheckpointFrom, checkpoint: str) -> dict[str, Any]:
    """The partial pod spec a server-side apply needs to own just the checkpoint field."""
    container: dict[str, Any] = {"name": source.container}
    if source.image:
        container["image"] = checkpoint
    else:
        container["env"] = [{"name": source.env, "value": checkpoint}]
    return {"spec": {"template": {"spec": {"containers": [container]}}}}
