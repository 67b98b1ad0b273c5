"""The engine: one loop that wires telemetry -> predict -> scaffold -> backend -> refine, tick by tick."""

from netscaffold.engine.loop import Engine, TickRecord
from netscaffold.engine.predictors import OraclePredictor, Predictor
from netscaffold.engine.tally import RunTally, StrategyFigures

__all__ = ["Engine", "OraclePredictor", "Predictor", "RunTally", "StrategyFigures", "TickRecord"]
