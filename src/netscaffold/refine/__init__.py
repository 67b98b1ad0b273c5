"""Stage 3: measure prediction against reality and correct the primed network."""

from netscaffold.refine.discrepancy import Discrepancy, calculate_discrepancy
from netscaffold.refine.refiner import DriftDetector, RefineDecision, RefinePolicy, Refiner

__all__ = [
    "Discrepancy",
    "DriftDetector",
    "RefineDecision",
    "RefinePolicy",
    "Refiner",
    "calculate_discrepancy",
]
