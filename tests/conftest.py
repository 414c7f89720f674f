"""Shared fixtures: the anyio backend, environment isolation, and the users directory."""

import os

import pytest

pytest_plugins = ["tests.pg"]


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No BULKHEAD_* variable from the developer's shell leaks into a test."""
    for key in list(os.environ):
        if key.startswith("BULKHEAD_"):
            monkeypatch.delenv(key)
