"""netscaffold: predictive virtual-network scaffolding.

The pipeline, one package per stage: telemetry -> predict -> scaffold -> backends -> refine,
wired by :mod:`netscaffold.engine`. :mod:`netscaffold.model` holds the shared vocabulary.
"""

# The single source of the version (pyproject reads it), kept a literal so that importing the package
# stays instant (importlib.metadata costs ~0.15 s, a third of the `--help` budget).
__version__ = "0.1.0"

__all__ = ["__version__"]
