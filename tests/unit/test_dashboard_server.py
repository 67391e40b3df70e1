"""The dashboard server's guards, which refuse before any cluster call: Host names (DNS rebinding), cross-origin
POSTs, CSRF tokens, and the headers every answer carries."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from modelratchet.cli.kubeapi import Cluster
from modelratchet.dashboard.server import CSP, SESSION_COOKIE, Dashboard, Settings, is_loopback

NO_CLUSTER = Cluster(api=None, server="https://unused.invalid", namespace="default", user="u")


def run(check: Callable[[TestClient[Any, Any], Dashboard], Awaitable[None]], **settings: Any) -> None:
    dashboard = Dashboard(NO_CLUSTER, Settings(**{"address": "127.0.0.1", "port": 0, "read_only": False,
                                                  "namespace": None, "context": "c", **settings}))

    async def go() -> None:
        async with TestClient(TestServer(dashboard.app())) as client:
            await check(client, dashboard)

    asyncio.run(go())


@pytest.mark.parametrize(
    ("host", "status"),
    [("127.0.0.1:8484", 200), ("localhost:8484", 200), ("[::1]:8484", 200), ("evil.example:8484", 421),
     ("127.0.0.1.nip.io", 421)],
)
def test_only_loopback_names_are_answered(host: str, status: int) -> None:
    async def check(client: TestClient[Any, Any], _: Dashboard) -> None:
        resp = await client.get("/static/dashboard.js", headers={"Host": host})
        assert resp.status == status

    run(check)


def test_an_allowed_host_is_answered() -> None:
    async def check(client: TestClient[Any, Any], _: Dashboard) -> None:
        assert (await client.get("/healthz", headers={"Host": "rollouts.example.com"})).status == 200
        assert (await client.get("/healthz", headers={"Host": "other.example.com"})).status == 421

    run(check, address="0.0.0.0", allowed_hosts={"rollouts.example.com"})


def test_every_answer_carries_the_security_headers_and_a_session_cookie() -> None:
    async def check(client: TestClient[Any, Any], _: Dashboard) -> None:
        resp = await client.get("/static/dashboard.js")
        assert resp.headers["Content-Security-Policy"] == CSP and "script-src 'self'" in CSP
        assert "unsafe-inline" not in CSP
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["X-Frame-Options"] == "DENY"
        cookie = resp.cookies[SESSION_COOKIE]
        assert cookie["httponly"] and cookie["samesite"] == "Strict"
        assert (await client.get("/static/../server.py")).status == 404

    run(check)


def test_actions_need_the_same_origin_and_the_session_token() -> None:
    async def check(client: TestClient[Any, Any], dashboard: Dashboard) -> None:
        host = f"127.0.0.1:{client.port}"
        url = "/rollouts/ns/name/promote"
        # Another site's form: refused by Origin, whatever it carries.
        resp = await client.post(url, data={"csrf": "x"}, headers={"Origin": "http://evil.example"})
        assert resp.status == 403 and "cross-origin" in await resp.text()
        assert (await client.post(url, data={"csrf": "x"})).status == 403  # no Origin at all
        # Same origin, but no session or the wrong token: refused before the cluster is asked anything.
        same = {"Origin": f"http://{host}"}
        resp = await client.post(url, data={"csrf": "x"}, headers=same)
        assert resp.status == 403 and "CSRF" in await resp.text()
        session = "s" * 43
        client.session.cookie_jar.update_cookies({SESSION_COOKIE: session})
        wrong = dashboard.csrf_token("t" * 43)
        resp = await client.post(url, data={"csrf": wrong}, headers=same)
        assert resp.status == 403 and "CSRF" in await resp.text()
        # An unknown action is refused by name.
        resp = await client.post("/rollouts/ns/name/delete", data={"csrf": dashboard.csrf_token(session)},
                                 headers=same)
        assert resp.status == 404

    run(check)


def test_a_large_body_is_refused() -> None:
    async def check(client: TestClient[Any, Any], _: Dashboard) -> None:
        host = f"127.0.0.1:{client.port}"
        resp = await client.post("/rollouts/ns/name/promote", data={"csrf": "x" * 100_000},
                                 headers={"Origin": f"http://{host}"})
        assert resp.status == 413

    run(check)


def test_loopback_addresses() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1")


def test_the_verb_names_a_bad_port_and_a_missing_kubeconfig(capsys: pytest.CaptureFixture[str]) -> None:
    from modelratchet.cli.main import main

    assert main(["dashboard", "--port", "70000", "--kubeconfig", "/nonexistent"]) == 2
    assert capsys.readouterr().err == "modelratchet dashboard: --port 70000: must be 0 to 65535\n"
    assert main(["dashboard", "--kubeconfig", "/nonexistent/kubeconfig"]) == 2
    assert capsys.readouterr().err == "modelratchet dashboard: kubeconfig /nonexistent/kubeconfig does not exist\n"


def test_names_that_are_not_object_names_are_refused_before_the_cluster() -> None:
    async def check(client: TestClient[Any, Any], _: Dashboard) -> None:
        resp = await client.get("/events", params={"namespace": "ns", "name": "x,metadata.namespace=other"})
        assert resp.status == 400 and "object names" in await resp.text()
        assert (await client.get("/events", params={"name": "x"})).status == 400  # a name needs its namespace
        assert (await client.get("/rollouts/NS/x")).status == 404
        assert (await client.get("/", params={"namespace": "a b"})).status == 400

    run(check)
