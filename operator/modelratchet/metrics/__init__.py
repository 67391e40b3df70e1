"""The Prometheus provider: PromQL templates, a client that reports problems as data, and observations."""
