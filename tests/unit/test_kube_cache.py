"""The watch cache the looks read from, and the applied-digest that lets a look skip an apply that changes nothing."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from modelratchet.kube import resources as res
from modelratchet.kube.resources import APPLIED_ANNOTATION, WatchCache, already_applied, stamp_applied
from modelratchet.reconciler import MIN_REQUEUE, after_look


def _obj(name: str = "r1", rv: str = "1", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": rv}, "spec": dict(spec)}


def test_the_cache_answers_nothing_until_a_watch_enables_it() -> None:
    cache = WatchCache()
    cache.put("modelrollouts", _obj())
    assert cache.get("modelrollouts", "ns", "r1") is None and len(cache) == 0


def test_the_cache_keeps_the_latest_version_and_forgets_deleted_objects() -> None:
    cache = WatchCache()
    cache.enable()
    cache.put("modelrollouts", _obj(rv="1", checkpoint="v1"))
    cache.put("modelrollouts", _obj(rv="2", checkpoint="v2"))
    cache.put("deployments", _obj(rv="7"))  # another kind of the same name is another object
    got = cache.get("modelrollouts", "ns", "r1")
    assert got is not None and got["metadata"]["resourceVersion"] == "2" and got["spec"] == {"checkpoint": "v2"}
    cache.drop("modelrollouts", "ns", "r1")
    assert cache.get("modelrollouts", "ns", "r1") is None  # a miss: the caller reads from the API server
    assert cache.get("deployments", "ns", "r1") is not None


def test_the_cache_keeps_no_managed_fields() -> None:
    cache = WatchCache()
    cache.enable()
    body = _obj(checkpoint="v1")
    body["metadata"]["managedFields"] = [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]
    cache.put("modelrollouts", body)
    got = cache.get("modelrollouts", "ns", "r1")
    assert got is not None and "managedFields" not in got["metadata"]
    assert got["metadata"]["resourceVersion"] == body["metadata"]["resourceVersion"]
    assert body["metadata"]["managedFields"], "the caller's body is left as it was"


def test_every_read_is_its_own_copy() -> None:
    cache = WatchCache()
    cache.enable()
    body = _obj(checkpoint="v1")
    cache.put("modelrollouts", body)
    body["spec"]["checkpoint"] = "changed by the caller after the put"
    first = cache.get("modelrollouts", "ns", "r1")
    assert first is not None
    first["spec"]["checkpoint"] = "changed by a reader"
    again = cache.get("modelrollouts", "ns", "r1")
    assert again is not None and again["spec"]["checkpoint"] == "v1"


def test_a_cached_read_falls_back_to_the_api_server_on_a_miss() -> None:
    class Custom:
        api_client = None
        calls = 0

        def get_namespaced_custom_object(self, *args: Any, **kwargs: Any) -> Any:
            Custom.calls += 1

            class Response:
                data = b'{"metadata": {"name": "r2", "resourceVersion": "9"}}'

            return Response()

    saved = res.CACHE
    res.CACHE = WatchCache()
    try:
        res.CACHE.enable()
        res.CACHE.put(res.ROLLOUTS, _obj(rv="5"))
        hit = res.get(Custom(), res.ROLLOUTS, "ns", "r1", cached=True)  # type: ignore[arg-type]
        assert hit is not None and hit["metadata"]["resourceVersion"] == "5" and Custom.calls == 0
        miss = res.get(Custom(), res.ROLLOUTS, "ns", "r2", cached=True)  # type: ignore[arg-type]
        assert miss is not None and miss["metadata"]["resourceVersion"] == "9" and Custom.calls == 1
        fresh = res.get(Custom(), res.ROLLOUTS, "ns", "r1")  # type: ignore[arg-type]
        assert fresh is not None and fresh["metadata"]["resourceVersion"] == "9" and Custom.calls == 2
    finally:
        res.CACHE = saved


def _canary(replicas: int = 1, strategy: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"replicas": replicas, "template": {"spec": {"containers": [{"name": "server"}]}}}
    if strategy is not None:
        spec["strategy"] = strategy
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "serving-canary", "namespace": "ns", "annotations": {"a": "1"}},
        "spec": spec,
    }


def _as_stored(desired: dict[str, Any]) -> dict[str, Any]:
    """What the API server hands back: the applied fields plus defaults and status."""
    stored = copy.deepcopy(desired)
    stored["metadata"].update(uid="u", resourceVersion="3", generation=2)
    stored["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "IfNotPresent"
    stored["spec"].setdefault("strategy", {"type": "RollingUpdate"})
    stored["status"] = {"readyReplicas": 1}
    return stored


def test_an_apply_that_would_change_nothing_is_skipped() -> None:
    stored = _as_stored(stamp_applied(_canary()))
    assert already_applied(stored, stamp_applied(_canary()))
    assert stamp_applied(_canary())["metadata"]["annotations"]["a"] == "1"


def test_an_apply_is_made_when_anything_it_sets_differs() -> None:
    stored = _as_stored(stamp_applied(_canary()))
    assert not already_applied(None, stamp_applied(_canary()))  # no canary yet
    assert not already_applied(stored, stamp_applied(_canary(replicas=2)))  # what is applied changed
    scaled = copy.deepcopy(stored)
    scaled["spec"]["replicas"] = 5  # someone else changed a field the operator owns
    assert not already_applied(scaled, stamp_applied(_canary()))
    unstamped = copy.deepcopy(stored)
    del unstamped["metadata"]["annotations"][APPLIED_ANNOTATION]  # made by an operator without the digest
    assert not already_applied(unstamped, stamp_applied(_canary()))
    extra = copy.deepcopy(stored)
    extra["spec"]["template"]["spec"]["containers"].append({"name": "sidecar"})
    assert not already_applied(extra, stamp_applied(_canary()))


def test_a_field_no_longer_applied_is_applied_away() -> None:
    """The target dropped a field the canary copied: the canary still holds it, yet the apply must run so the
    server-side apply removes it; the digest tells the two apart."""
    stored = _as_stored(stamp_applied(_canary(strategy={"type": "Recreate"})))
    assert not already_applied(stored, stamp_applied(_canary()))


def test_the_next_look_counts_from_the_whole_second_the_core_decided_on() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)  # the look's clock, whole seconds
    # 0.7 s of the second had passed when the look read it, and the look took 0.3 s more.
    assert after_look(10.0, now, at=now + timedelta(seconds=1.0)) == 9.01
    assert after_look(1.0, now, at=now + timedelta(seconds=5)) == MIN_REQUEUE  # never a busy loop
    assert after_look(0.1, now, at=now + timedelta(seconds=5)) == 0.1  # nor later than the core asked
