"""One checkpoint format for every forecaster: a torch file of plain types and tensors, read back with
``torch.load(..., weights_only=True)`` (no pickled code). It stores the model name and hyper-parameters, the
fitted arrays (weights, scalers, residual tables), the pairs and nodes, the feature list, the training-data
fingerprint and the package version. Anything that does not read back as exactly that is a
:class:`~netscaffold.errors.CheckpointError`: a missing, corrupt, truncated or incompatible file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from netscaffold import __version__
from netscaffold.errors import CheckpointError, ValidationError

if TYPE_CHECKING:
    from netscaffold.predict.base import Forecaster

FORMAT = "netscaffold-forecaster"
FORMAT_VERSION = 1
_TEXT_KEYS = ("format", "model", "package_version", "config", "pairs", "nodes", "fingerprint")


def save_checkpoint(model: Forecaster, path: Path) -> None:
    import torch

    payload: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": model.name,
        "package_version": __version__,
        "config": json.dumps(model.config()),
        "pairs": json.dumps([list(p) for p in model.pairs]),
        "nodes": json.dumps(list(model.nodes)),
        "fingerprint": model.fingerprint,
        "arrays": {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in model.arrays().items()},
    }
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise CheckpointError(f"cannot write: {exc.strerror}", file=str(path)) from None


def _read(path: Path) -> dict[str, Any]:
    import torch

    if not path.is_file():
        raise CheckpointError("checkpoint file does not exist", file=str(path))
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"corrupt or truncated checkpoint ({type(exc).__name__})", file=str(path)
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"not a {FORMAT} checkpoint", file=str(path))
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint format version {payload.get('format_version')!r}, this netscaffold reads "
            f"{FORMAT_VERSION}: retrain the model",
            file=str(path),
        )
    for key in _TEXT_KEYS:
        if not isinstance(payload.get(key), str):
            raise CheckpointError(f"missing or malformed entry {key!r}", file=str(path), field=key)
    if not isinstance(payload.get("arrays"), dict):
        raise CheckpointError("missing arrays", file=str(path), field="arrays")
    return payload


def load_checkpoint(path: Path) -> Forecaster:
    from netscaffold.predict.registry import make_forecaster

    payload = _read(path)
    try:
        config = json.loads(payload["config"])
        pairs = tuple((str(a), str(b)) for a, b in json.loads(payload["pairs"]))
        nodes = tuple(str(n) for n in json.loads(payload["nodes"]))
        model = make_forecaster(payload["model"], **constructor_args(config))
        arrays = {str(k): v.numpy() for k, v in payload["arrays"].items()}
        model.pairs, model.nodes = pairs, nodes
        model.fingerprint = payload["fingerprint"]
        model.restore(config, arrays)
    except CheckpointError as exc:
        raise exc.at(file=str(path)) from None
    except (ValidationError, ValueError, TypeError, KeyError, AttributeError, RuntimeError) as exc:
        raise CheckpointError(f"incompatible checkpoint: {exc}", file=str(path)) from None
    model.fitted = True
    return model


def constructor_args(config: dict[str, Any]) -> dict[str, Any]:
    """The constructor keywords stored in a config (tuned values are restored separately)."""
    keys = ("levels", "horizon", "validation_fraction", "seed")
    args = {k: config[k] for k in keys}
    args["levels"] = tuple(args["levels"])
    args.update(config.get("hyper", {}))
    return args


def checkpoint_info(path: Path) -> dict[str, Any]:
    """The header of a checkpoint (model, versions, fingerprint) without building the model."""
    payload = _read(path)
    return {
        "model": payload["model"],
        "format_version": payload["format_version"],
        "package_version": payload["package_version"],
        "fingerprint": payload["fingerprint"],
        "config": json.loads(payload["config"]),
    }
