"""Stage 2: turn a PredictedGraph into a primed configuration under a provisional budget."""

from netscaffold.scaffold.planner import Scaffolder, ScaffoldResult
from netscaffold.scaffold.policy import ClassRisk, LinearSetupCost, ScaffoldPolicy, SetupCostModel

__all__ = [
    "ClassRisk",
    "LinearSetupCost",
    "ScaffoldPolicy",
    "ScaffoldResult",
    "Scaffolder",
    "SetupCostModel",
]
