"""Leader election on a coordination.k8s.io Lease, so only one of several replicas acts."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

from kubernetes import client
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)


class LeaseElector:
    def __init__(
        self,
        coordination: client.CoordinationV1Api,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_seconds: int = 15,
        on_change: threading.Event,
    ) -> None:
        self.api = coordination
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_seconds = lease_seconds
        self.leading = on_change  # set while this replica holds the lease
        self._stop = threading.Event()

    def _try(self) -> bool:
        now = datetime.now(UTC)
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace)
        except ApiException as e:
            if e.status != 404:
                raise
            body = client.V1Lease(
                metadata=client.V1ObjectMeta(name=self.name, namespace=self.namespace),
                spec=client.V1LeaseSpec(
                    holder_identity=self.identity,
                    lease_duration_seconds=self.lease_seconds,
                    acquire_time=now,
                    renew_time=now,
                    lease_transitions=0,
                ),
            )
            try:
                self.api.create_namespaced_lease(self.namespace, body)
                return True
            except ApiException as e2:
                if e2.status == 409:
                    return False
                raise
        spec = lease.spec or client.V1LeaseSpec()
        lease.spec = spec
        holder = spec.holder_identity
        renew = spec.renew_time
        expired = renew is None or renew + timedelta(seconds=spec.lease_duration_seconds or self.lease_seconds) < now
        if holder != self.identity and not expired:
            return False
        if holder != self.identity:
            spec.lease_transitions = (spec.lease_transitions or 0) + 1
            spec.acquire_time = now
        spec.holder_identity = self.identity
        spec.renew_time = now
        spec.lease_duration_seconds = self.lease_seconds
        try:
            # resourceVersion in the body makes this a compare-and-swap: two candidates cannot both win.
            self.api.replace_namespaced_lease(self.name, self.namespace, lease)
            return True
        except ApiException as e:
            if e.status == 409:
                return False
            raise

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                won = self._try()
            except Exception as e:
                log.warning("leader election: %s", e)
                won = False
            if won and not self.leading.is_set():
                log.info("%s is now the leader", self.identity)
                self.leading.set()
            elif not won and self.leading.is_set():
                log.warning("%s lost the lease; standing by", self.identity)
                self.leading.clear()
            self._stop.wait(self.lease_seconds / 3)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="leader-election", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
