"""Fixtures for bulkhead-users behaviour tests: a loaded directory and a server over it."""

from collections.abc import AsyncIterator
from typing import Any

import pytest

from bulkhead.app import BulkheadServer
from bulkhead_users.filedir import FileDirectory
from bulkhead_users.server import build_server
from bulkhead_users.settings import BUNDLED_DIRECTORY, UsersSettings


def make_settings(**overrides: Any) -> UsersSettings:
    return UsersSettings.model_validate(overrides)


@pytest.fixture
async def bundled() -> AsyncIterator[FileDirectory]:
    directory = FileDirectory(BUNDLED_DIRECTORY)
    await directory.open()
    yield directory
    await directory.aclose()


@pytest.fixture
def server(bundled: FileDirectory) -> BulkheadServer:
    return build_server(make_settings(audit="off"), bundled)
