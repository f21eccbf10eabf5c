"""The training checkpoint format: what ``nst train`` writes and ``--resume`` and ``nst export`` read.

A checkpoint is a plain dict of tensors and JSON-able values (``torch.load(weights_only=True)``
reads it, so no code in a file ever runs): format name and version, the nst version that wrote it,
the training config, the generator's weights and, for ``--resume``, the training state
(:data:`TRAINING_STATE_KEYS`). The final model file has the same format, so training can be
continued from it too. This module owns the format as :mod:`nstcli.model_format` owns the ONNX one.

Versions: 1 kept the loss settings at the top of the config; 2 nests them under ``loss`` and
renames two fields (:func:`nstcli.settings.migrate_train`). Both load; new files are version 2.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from nstcli import generators, images
from nstcli.errors import InputError
from nstcli.settings import TrainConfig, check_types

CHECKPOINT_FORMAT = "nst-train"
CHECKPOINT_VERSION = 2
READABLE_VERSIONS = (1, 2)


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Write ``state`` (with format and version filled in) atomically."""
    write_torch_file({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **state}, path)


def write_torch_file(state: dict[str, Any], path: str | Path) -> None:
    """``torch.save`` of ``state``, written atomically (no partial file if the run dies)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    images.write_bytes_atomic(buffer.getvalue(), path)


def read_torch_file(path: str | Path, not_ours: str) -> Any:
    """What ``torch.save`` wrote at ``path`` (tensors and plain values only); InputError "PATH: ``not_ours``"
    for a file torch cannot read."""
    if not Path(path).is_file():
        raise InputError(f"{path}: no such file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - any unreadable file is the same user error
        raise InputError(f"{path}: {not_ours}") from None


def load_checkpoint(path: str | Path, resumable: bool = False) -> dict[str, Any]:
    """Read a checkpoint or trained model (tensors and plain values only); its config in today's layout.

    ``resumable``: it must also hold the training state (optimiser, step, data position, RNG), as
    ``--resume`` needs; a file with weights and config only can be exported but not resumed.
    """
    state = read_torch_file(path, "not an nst model or checkpoint")
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{path}: not an nst model or checkpoint")
    if state.get("version") not in READABLE_VERSIONS:
        raise InputError(f"{path}: checkpoint version {state.get('version')} is not supported")
    if not isinstance(state.get("model"), dict) or not isinstance(state.get("config"), dict):
        raise InputError(f"{path}: damaged nst checkpoint (no model weights or configuration)")
    try:
        config = TrainConfig.from_dict(state["config"])
        check_types(config)
    except (TypeError, ValueError) as error:
        raise InputError(f"{path}: damaged nst checkpoint (configuration: {error})") from None
    state["config"] = config.to_dict()
    build_trained_generator(state, str(path))  # weights that do not fit their own configuration: refuse now
    if resumable:
        _check_training_state(state, str(path))
    return state


# What a checkpoint holds besides format, version, config and model, for --resume to continue exactly,
# with the types the trainer reads back (see nstcli.train.Trainer._load).
TRAINING_STATE_TYPES = {
    "optimizer": dict, "step": int, "items_seen": int, "world": int, "rng": list, "cuda_rng": (list, type(None)),
    "history": list, "seconds": (int, float), "data": dict, "style_digests": list,
}  # fmt: skip
TRAINING_STATE_KEYS = tuple(TRAINING_STATE_TYPES)
DATA_STATE_TYPES = {"count": int, "fingerprint": str, "skipped": int}


def _check_training_state(state: dict[str, Any], path: str) -> None:
    missing = [key for key in TRAINING_STATE_KEYS if key not in state]
    if missing:
        raise InputError(f"{path}: holds no training state ({', '.join(missing)}): it can be exported, not resumed")
    wrong = [key for key, kind in TRAINING_STATE_TYPES.items() if not isinstance(state[key], kind)]
    wrong += [f"data.{key}" for key, kind in DATA_STATE_TYPES.items()
              if isinstance(state["data"], dict) and not isinstance(state["data"].get(key), kind)]  # fmt: skip
    if wrong:
        raise InputError(f"{path}: damaged nst checkpoint (training state {', '.join(wrong)} of the wrong type)")


def build_trained_generator(state: dict[str, Any], name: str = "checkpoint") -> tuple[torch.nn.Module, TrainConfig, int]:
    """The generator of a checkpoint, in eval mode on the CPU, with its config and size multiple."""
    config = TrainConfig.from_dict(state["config"])
    try:
        options = generators.make_options(config.arch, config.arch_options)
    except TypeError as error:  # an option of the wrong type (a damaged or hand-made file)
        raise InputError(f"{name}: damaged nst checkpoint (generator options: {error})") from None
    model = generators.build_generator(config.arch, options)
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, TypeError, AttributeError) as error:  # a damaged or hand-made file
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(f"{name}: damaged nst checkpoint ({first[:200]})") from None
    return model.eval(), config, options.size_multiple()
