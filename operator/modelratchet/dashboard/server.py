"""The dashboard's web server (aiohttp): pages, the live overview stream and the gate actions.

Safe by default: the browser gets HTML and JSON only, never a credential (the kubeconfig stays in this process);
the Host header must name this server (a page from another site resolving its name to 127.0.0.1 is refused:
DNS rebinding); actions need a same-origin POST carrying the session's CSRF token; the Content-Security-Policy
allows no inline script; request bodies and pages are bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import ipaddress
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from aiohttp import web

from modelratchet.cli.kubeapi import CliError, Cluster, get_rollout, list_events, list_rollouts, parse_rollout

from . import kube, pages
from .views import overview_row, rollout_view

SESSION_COOKIE = "mr_session"
SESSION = web.RequestKey("session", str)
MAX_BODY = 16 * 1024  # an action's form is a token and nothing else
MAX_STREAMS = 16  # concurrent live streams (each holds a watch thread)
KEEPALIVE_SECONDS = 15.0
PERMISSION_TTL = 60.0  # seconds an access review answer is reused
STATIC = {"dashboard.js": "application/javascript", "dashboard.css": "text/css"}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Object and namespace names as the API server allows them: anything else is refused before it reaches a URL
# or a field selector.
NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


def _names_ok(*names: str | None) -> bool:
    return all(n is None or NAME.fullmatch(n) for n in names)


@dataclass
class Settings:
    address: str
    port: int
    read_only: bool  # forced: no actions whatever RBAC allows
    namespace: str | None  # the default filter (None: all namespaces)
    context: str  # what the header says this is connected to
    allowed_hosts: set[str] = field(default_factory=set)  # extra Host names (an auth proxy's)


class Dashboard:
    def __init__(self, cluster: Cluster, settings: Settings):
        self.cluster = cluster
        self.settings = settings
        self.secret = secrets.token_bytes(32)  # signs CSRF tokens; new each start
        self.streams = 0
        self._permissions: dict[str, tuple[float, bool]] = {}

    # ------------------------------------------------------------------ helpers

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    def csrf_token(self, session: str) -> str:
        return hmac.new(self.secret, session.encode(), hashlib.sha256).hexdigest()

    async def may_act(self, namespace: str) -> bool:
        if self.settings.read_only:
            return False
        cached = self._permissions.get(namespace)
        if cached is not None and time.monotonic() - cached[0] < PERMISSION_TTL:
            return cached[1]
        allowed = bool(await self.call(kube.can_patch_status, self.cluster, namespace))
        self._permissions[namespace] = (time.monotonic(), allowed)
        return allowed

    def html(self, text: str, status: int = 200) -> web.Response:
        response = web.Response(text=text, status=status, content_type="text/html", charset="utf-8")
        response.enable_compression()  # SVG markup compresses about fivefold
        return response

    def error(self, status: int, message: str) -> web.Response:
        return self.html(pages.error_page(status, message, context=self.settings.context), status)

    # ------------------------------------------------------------------ pages

    async def overview(self, request: web.Request) -> web.Response:
        namespace = request.query.get("namespace", self.settings.namespace or "").strip() or None
        if not _names_ok(namespace):
            return self.error(400, "the namespace filter must be a Kubernetes namespace name")
        now = datetime.now(UTC)
        rows, error = [], None
        try:
            for obj in await self.call(list_rollouts, self.cluster, namespace):
                try:
                    rows.append(overview_row(parse_rollout(obj), now))
                except CliError as e:
                    error = e.message
        except CliError as e:
            error = e.message
        return self.html(pages.overview_page(rows, namespace=namespace, context=self.settings.context, error=error))

    async def rollout(
        self, request: web.Request, notice: tuple[str, str] | None = None, status: int = 200
    ) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        if not _names_ok(namespace, name):
            return self.error(404, "no such ModelRollout: namespace and name must be Kubernetes object names")
        try:
            obj = await self.call(get_rollout, self.cluster, namespace, name)
            ro = parse_rollout(obj)
        except CliError as e:
            return self.error(404 if "not found" in e.message else 502, e.message)
        baseline_name = ro.spec.baseline_ref.name
        # The rest is independent: ask the API server for all of it at once.
        found: tuple[Any, ...] = await asyncio.gather(
            self.call(list_events, self.cluster, namespace, name, obj["metadata"].get("uid")),
            self.call(kube.get_baseline, self.cluster, namespace, baseline_name),
            self.may_act(namespace),
            return_exceptions=True,
        )
        events_raw, baseline, may_act = found
        note = None
        if isinstance(events_raw, CliError):
            events, note = [], f"Events could not be read: {events_raw.message}"
        elif isinstance(events_raw, BaseException):
            raise events_raw
        else:
            events = kube.recent_events(events_raw)
        if isinstance(baseline, CliError):
            baseline = None
        elif isinstance(baseline, BaseException):
            raise baseline
        if isinstance(may_act, BaseException):
            raise may_act
        view = rollout_view(ro, datetime.now(UTC), baseline=baseline)
        extras = pages.Extras(
            conditions=(obj.get("status") or {}).get("conditions") or [],
            events=events,
            baseline_yaml=kube.baseline_definition(baseline) if baseline is not None else None,
            baseline_name=baseline_name,
            events_note=note,
        )
        session = request.get(SESSION, "")
        text = pages.rollout_page(
            view,
            extras,
            version=str(obj["metadata"].get("resourceVersion") or ""),
            context=self.settings.context,
            csrf=self.csrf_token(session),
            read_only=not may_act,
            notice=notice,
        )
        return self.html(text, status)

    async def action(self, request: web.Request) -> web.Response:
        from modelratchet.cli import gates

        namespace, name, action = (
            request.match_info["namespace"],
            request.match_info["name"],
            request.match_info["action"],
        )
        if action not in gates.ACTIONS or not _names_ok(namespace, name):
            return self.error(404, f"unknown action {action[:20]!r} or object: promote, abort or retry a ModelRollout")
        form = await request.post()
        token = str(form.get("csrf", ""))
        session = request.cookies.get(SESSION_COOKIE, "")
        if not session or not hmac.compare_digest(token, self.csrf_token(session)):
            return self.error(403, "the form's CSRF token does not match this session: reload the page and try again")
        if not await self.may_act(namespace):
            return await self.rollout(request, ("refused", "this dashboard is read-only here: actions are off"), 403)
        args = argparse.Namespace(
            name=name, gate_action=action, checkpoint=None, reason="from the dashboard", force=False
        )
        try:
            gate = await self.call(gates._write, self.cluster, args, namespace)
        except CliError as e:
            if e.message.startswith("forbidden"):
                text = f"{action} refused by the cluster's RBAC for your user: {e.message}"
                return await self.rollout(request, ("refused", text), 403)
            return await self.rollout(request, ("refused", f"{action} not requested: {e.message}"), 409)
        text = (
            f"{gate.action} of {gate.checkpoint} requested by {gate.requested_by}; "
            "the operator applies it at its next reconcile"
        )
        return await self.rollout(request, ("ok", text))

    # ------------------------------------------------------------------ live overview

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-Sent Events: one JSON message per change of a ModelRollout the user can see."""
        if self.streams >= MAX_STREAMS:
            return web.Response(status=503, text="too many live streams")
        namespace = request.query.get("namespace", self.settings.namespace or "").strip() or None
        name = request.query.get("name", "").strip() or None
        if name is not None and namespace is None:
            return web.Response(status=400, text="name needs namespace")
        if not _names_ok(namespace, name):
            return web.Response(status=400, text="namespace and name must be Kubernetes object names")
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)

        def emit(kind: str, obj: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(self._enqueue, queue, kind, obj)

        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
        await response.prepare(request)
        watch = kube.RolloutWatch(self.cluster, namespace, emit, name=name)
        self.streams += 1
        watch.start()
        try:
            while True:
                try:
                    message = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                await response.write(f"data: {json.dumps(message)}\n\n".encode())
        except ConnectionResetError:
            pass  # the browser went away; a cancelled handler (server stopping) ends here too, via finally
        finally:
            watch.stop()
            self.streams -= 1
        return response

    @staticmethod
    def _enqueue(queue: asyncio.Queue[dict[str, Any]], kind: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        key = f"{meta.get('namespace', '-')}/{meta.get('name', '-')}"
        message: dict[str, Any]
        if kind == "ERROR":
            message = {"type": "ERROR", "message": str(obj.get("message", ""))[:500]}
        elif kind == "DELETED":
            message = {"type": "DELETED", "key": key}
        else:
            try:
                row = overview_row(parse_rollout(obj), datetime.now(UTC)).as_json()
                message = {"type": kind, "row": row, "version": str(meta.get("resourceVersion") or "")}
            except CliError as e:
                message = {"type": "ERROR", "message": e.message[:500]}
        if queue.full():  # a browser that stopped reading: drop the oldest, the newest state matters
            queue.get_nowait()
        queue.put_nowait(message)

    # ------------------------------------------------------------------ static

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["file"]
        if name not in STATIC:
            raise web.HTTPNotFound()
        body = resources.files("modelratchet.dashboard").joinpath("static", name).read_bytes()
        response = web.Response(body=body, content_type=STATIC[name], headers={"Cache-Control": "max-age=300"})
        response.enable_compression()
        return response

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    # ------------------------------------------------------------------ middleware

    def _host_allowed(self, host: str) -> bool:
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        name = name.strip("[]").lower()
        if name in self.settings.allowed_hosts or name == "localhost":
            return True
        try:
            ip = ipaddress.ip_address(name)
        except ValueError:
            return False
        # A literal address is not a name an attacker's page can rebind.
        return ip.is_loopback or str(ip) == self.settings.address or self._any_address()

    def _any_address(self) -> bool:
        return self.settings.address in ("0.0.0.0", "::")

    @web.middleware
    async def guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request.headers.get("Host", "")
        if not self._host_allowed(host):
            return web.Response(status=421, text=f"this dashboard does not answer for host {host[:100]!r}")
        if request.method not in ("GET", "HEAD", "POST"):
            return web.Response(status=405)
        if request.method == "POST":
            origin = request.headers.get("Origin")
            if origin is None or origin not in (f"http://{host}", f"https://{host}"):
                return web.Response(status=403, text="cross-origin request refused")
        session = request.cookies.get(SESSION_COOKIE)
        new_session = None
        if not session or len(session) != 43:
            session = new_session = secrets.token_urlsafe(32)
        request[SESSION] = session
        response = await handler(request)
        if new_session is not None:
            response.set_cookie(SESSION_COOKIE, new_session, httponly=True, samesite="Strict", path="/")
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers["X-Content-Type-Options"] = "nosniff"
        # Not no-referrer: with it a browser sends "Origin: null" on a form POST, which the check above refuses.
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.guard], client_max_size=MAX_BODY)
        app.router.add_get("/", self.overview)
        app.router.add_get("/events", self.events)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/static/{file}", self.static)
        app.router.add_get("/rollouts/{namespace}/{name}", self.rollout)
        app.router.add_post("/rollouts/{namespace}/{name}/{action}", self.action)
        return app


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


async def serve(dashboard: Dashboard, ready: Callable[[str], None]) -> None:
    """Serve until cancelled; ``ready`` gets the URL once the socket listens (the port may have been 0)."""
    runner = web.AppRunner(dashboard.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, dashboard.settings.address, dashboard.settings.port, shutdown_timeout=1.0)
    await site.start()
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    port = sockets[0].getsockname()[1] if sockets else dashboard.settings.port
    dashboard.settings.port = port
    host = dashboard.settings.address
    shown = f"[{host}]" if ":" in host else host
    ready(f"http://{shown}:{port}/")
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
