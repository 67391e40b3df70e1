"""A real Prometheus scrapes a real exporter; queries go through prometheus_api_client."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_api_client import PrometheusConnect
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from e2e.harness.cluster import free_port
from e2e.harness.prometheus import LocalPrometheus
from e2e.harness.wait import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


class Exporter:
    """A prometheus_client exporter on a free loopback port with one known gauge value."""

    def __init__(self, value: float) -> None:
        self.registry = CollectorRegistry()
        self.metric = f"e2e_probe_{secrets.token_hex(3)}"
        self.gauge = Gauge(self.metric, "Known value for the scrape test", ["model"], registry=self.registry)
        self.gauge.labels(model="demo").set(value)
        self.port = free_port()
        self.server, self.thread = start_http_server(self.port, addr="127.0.0.1", registry=self.registry)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    exp = Exporter(0.875)
    try:
        yield exp
    finally:
        exp.close()


def _value(prom: PrometheusConnect, query: str) -> float | None:
    result: list[dict[str, Any]] = prom.custom_query(query)
    return float(result[0]["value"][1]) if result else None


def test_scrapes_exporter_and_survives_restart(prometheus: LocalPrometheus, exporter: Exporter) -> None:
    job = f"probe-{secrets.token_hex(3)}"
    prometheus.add_target(job, exporter.address, {"team": "e2e"})
    try:
        client = PrometheusConnect(url=prometheus.url, disable_ssl=True)
        query = f'{exporter.metric}{{job="{job}", team="e2e", model="demo"}}'
        value = wait_for(lambda: _value(client, query), timeout=60, interval=0.5,
                         message=f"Prometheus to return {query}")
        assert value == pytest.approx(0.875)
        assert prometheus.query(f'up{{job="{job}"}}')[0]["value"][1] == "1"

        url = prometheus.url
        prometheus.stop()
        with pytest.raises(Exception):  # noqa: B017 - any connection error will do
            client.custom_query("up")
        exporter.gauge.labels(model="demo").set(0.5)
        prometheus.start()
        assert prometheus.url == url

        client = PrometheusConnect(url=prometheus.url, disable_ssl=True)
        value = wait_for(lambda: _value(client, f"{query} == 0.5"), timeout=60, interval=0.5,
                         message="the new value after a Prometheus restart")
        assert value == pytest.approx(0.5)
    finally:
        prometheus.remove_target(job)


def test_remove_target_stops_scraping(prometheus: LocalPrometheus, exporter: Exporter) -> None:
    job = f"gone-{secrets.token_hex(3)}"
    prometheus.add_target(job, exporter.address)
    wait_for(lambda: prometheus.query(f'up{{job="{job}"}} == 1'), timeout=60, interval=0.5,
             message=f"{job} to be scraped")
    prometheus.remove_target(job)
    wait_for(lambda: not any(t["labels"].get("job") == job for t in prometheus.active_targets()),
             timeout=60, interval=0.5, message=f"{job} to disappear from active targets")
