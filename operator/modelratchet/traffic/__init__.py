"""Traffic routers: the shell's side of trafficRouting. ``rollout/`` decides the candidate's share (a
RouteState); a router applies it to the data plane and reads back what the data plane does.

A router can set a weight, a header route and a mirror (``set_route`` applies all three at once, one write),
verify them (``observe`` reads the route back, with whether the router accepted it) and remove everything it
manages (``set_route(STABLE_ONLY)`` plus its own objects). Providers: ``gatewayAPI`` (an HTTPRoute); KServe or
Istio would be further implementations of the same protocol.
"""

from __future__ import annotations

from typing import Protocol

from modelratchet.rollout.types import RouteObservation, RouteState


class RouteError(ValueError):
    """The route cannot be managed as configured (missing, no such rule, unsupported combination)."""

    reason = "RouteInvalid"


class TrafficRouter(Protocol):
    def observe(self) -> RouteObservation:
        """The route as the data plane has it now (raises RouteError when it cannot be managed)."""
        ...

    def set_route(self, state: RouteState) -> None:
        """Make the route give the candidate exactly ``state``; idempotent."""
        ...

    def remove(self) -> None:
        """Back to stable only, and delete every object this router created."""
        ...
