"""The embedded flow-level emulator (the ``sim`` backend).

``SimBackend`` implements the :class:`~netscaffold.backends.protocol.Backend` contract over a flow table;
``emulate`` runs the reactive network (no scaffolding) to the end. Max-min fair sharing with reservation
floors, reactive setup costs from named profiles, exact incremental rate updates in a numba event loop.
"""

from netscaffold.backends.sim.backend import SimBackend
from netscaffold.backends.sim.costs import PROFILES, SetupCostProfile
from netscaffold.backends.sim.emulate import emulate
from netscaffold.backends.sim.result import EmulationResult

__all__ = ["PROFILES", "EmulationResult", "SetupCostProfile", "SimBackend", "emulate"]
