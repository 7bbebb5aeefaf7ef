"""Training checkpoints that resume exactly: the state of a run and the config record that made it.

Written atomically (a kill leaves the previous checkpoint or none), read with
``torch.load(weights_only=True)``, and refused in one line when damaged or made under another
config (the differing key named). Shared by LAM and BC training.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch

from promptlam.errors import UserError
from promptlam.io import atomic_output
from promptlam.runs import check_record

CHECKPOINT_FILE = "checkpoint.pt"


def load_checkpoint(path: Path, record: dict[str, Any], remedy: str) -> dict[str, Any] | None:
    """The checkpoint at ``path`` if there is one, checked against ``record``; None if absent."""
    if not path.exists():
        return None
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        stored = json.loads(checkpoint["record"])
    except Exception as exc:  # torch raises many types for a damaged file
        raise UserError(f"{path}: corrupt checkpoint ({type(exc).__name__}); delete it to train from the start") from None
    check_record(path, stored, record, remedy)
    # in the job's log: a rerun after a kill (a scancel, a node failure) goes on from here
    print(f"promptlam: resuming from {path} at step {checkpoint.get('step')}", file=sys.stderr, flush=True)
    return checkpoint


def save_checkpoint(path: Path, state: dict[str, Any], record: dict[str, Any]) -> None:
    """Write ``state`` (tensors, state dicts, numbers, lists) with ``record``, atomically."""
    with atomic_output(path) as tmp:
        torch.save({**state, "record": json.dumps(record)}, tmp)
