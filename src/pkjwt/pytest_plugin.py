"""The pytest plugin (entry point ``pytest11``): the ``pkjwt_server`` fixture.

pytest loads this module in every test run of every project that has pkjwt installed, so it
imports nothing of pkjwt until the fixture is used.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .testing import LocalAuthServer

__all__ = ["pkjwt_server"]


@pytest.fixture
def pkjwt_server() -> Iterator[LocalAuthServer]:
    """A local authorization server in the ``nhs`` profile, with a generated client (needs the
    ``server`` extra)."""
    from .testing import local_auth_server

    with local_auth_server("nhs") as server:
        yield server
