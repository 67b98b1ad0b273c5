"""Scale-out on Ray: connection (``--ray auto|local|ADDRESS``), parallel runs and sweeps, sharded analytics,
per-host agents and the capacity ledger.

Ray is imported only inside this package's functions, never at import time, so that ``import netscaffold``
and ``netscaffold --help`` stay fast. Start with :func:`netscaffold.distributed.connection.connect`.
"""

from __future__ import annotations
