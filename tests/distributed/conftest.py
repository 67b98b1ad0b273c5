"""One private local Ray for the whole test session (starting Ray costs many seconds on a 2-core machine).

``ray_local`` yields the :class:`~netscaffold.distributed.connection.RaySession`; code under test that calls
``connect(...)`` while it is up reuses it. Tests that use it carry ``@pytest.mark.ray``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from netscaffold.distributed.connection import RaySession, connect
from netscaffold.errors import BackendUnavailableError

RAY_TEST_CPUS = 2


@pytest.fixture(scope="session")
def ray_local() -> Iterator[RaySession]:
    """A local Ray on 127.0.0.1 with 2 CPUs and a 256 MiB object store, shut down after the session."""
    pytest.importorskip("ray")
    try:
        session = connect("local", num_cpus=RAY_TEST_CPUS)
    except BackendUnavailableError:
        # Ray waits a fixed 30 s for its raylet; on a loaded 2-core machine one more try usually does it.
        session = connect("local", num_cpus=RAY_TEST_CPUS)
    try:
        yield session
    finally:
        session.close()
