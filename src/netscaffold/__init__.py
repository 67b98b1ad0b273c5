"""netscaffold: predictive virtual-network scaffolding.

The pipeline, one package per stage: telemetry -> predict -> scaffold -> backends -> refine,
wired by :mod:`netscaffold.engine`. :mod:`netscaffold.model` holds the shared vocabulary.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("netscaffold")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
