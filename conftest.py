"""Root conftest: the fixtures for tests against real components live in a plugin module."""

pytest_plugins = ["e2e.harness.fixtures"]
