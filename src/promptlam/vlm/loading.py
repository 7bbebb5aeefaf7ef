"""Find a model's files (local folder or the local Hugging Face cache) and load it at a precision.

Nothing here touches the network: hub models must be in the local cache, and a missing one is
a one-line error that says how to download it ahead.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from promptlam.config import HubModel
from promptlam.errors import UserError
from promptlam.vlm.cache import DOWNLOAD_COMMAND, HubPin, cached_snapshot
from promptlam.vlm.families import Family

COMMIT = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files are and what they are."""

    path: str
    """Local folder to load from (a user folder or a hub cache snapshot), or a packaged weight file."""
    model: str
    """As named in the config."""
    revision: str | None
    """As named in the config."""
    commit: str | None
    """The hub commit actually loaded (the snapshot's), what pins packaged weights, None for a user folder."""


def resolve_source(target: HubModel, family: Family, where: str) -> ModelSource:
    """Locate ``target.model`` without the network; ``where`` names the config entry in errors."""
    packaged = family.packaged_weights(target, where)
    if packaged is not None:
        path, pin = packaged
        return ModelSource(path, target.model, target.revision, pin)
    local = Path(target.model).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise UserError(f"{where}.model: {local} has no config.json (expected a saved transformers model)")
        check_model_type(local, family, f"{where}.model")
        return ModelSource(str(local), target.model, target.revision, None)
    if target.model.startswith((".", "/", "~")) or target.model.count("/") != 1:
        raise UserError(f"{where}.model: {target.model!r} is neither a folder nor a hub id like 'org/name'")
    if family.trust_remote_code and not (target.revision and COMMIT.fullmatch(target.revision)):
        raise UserError(
            f"{where}.revision: {family.name} models run code from their hub repository, so they load "
            f"only at a pinned 40-character commit hash (got {target.revision!r})"
        )
    if not target.revision:
        raise UserError(f"{where}.revision: name the revision of {target.model} to load (a commit hash pins it)")
    # the same test of a complete snapshot as the workflow's check before any job (promptlam.vlm.cache)
    pin = HubPin(target.model, target.revision, (where,))
    folder, why = cached_snapshot(pin)
    if folder is None:
        raise UserError(f"{where}.model: {target.model} at revision {target.revision} {why}; nothing is downloaded "
                        f"at run time: fetch it ahead with `{DOWNLOAD_COMMAND}` or `{pin.hf_command()}`")
    check_model_type(folder, family, f"{where}.revision")
    return ModelSource(str(folder), target.model, target.revision, folder.name)


def check_model_type(folder: Path, family: Family, where: str) -> None:
    """A one-line error when ``folder`` holds a format of the model the family does not load (e.g.
    a remote-code revision of a model the family loads with transformers' own classes)."""
    if not family.model_types:
        return
    try:
        model_type = json.loads((folder / "config.json").read_text()).get("model_type")
    except (OSError, ValueError):
        return  # transformers reports an unreadable config.json itself
    if model_type not in family.model_types:
        wanted = " or ".join(repr(t) for t in family.model_types)
        raise UserError(f"{where}: {folder}/config.json says model_type {model_type!r}; the {family.name} "
                        f"family loads {wanted} (a revision in transformers' own format)")


def load_config(source: ModelSource, family: Family) -> Any:
    """The model's transformers config (cheap: no weights)."""
    import transformers

    return transformers.AutoConfig.from_pretrained(
        source.path, local_files_only=True, trust_remote_code=family.trust_remote_code)


def compute_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The dtype of activations: bf16 for `bf16`; for 8/4-bit, bf16 on GPUs and fp32 on CPUs."""
    if precision == "fp32":
        return torch.float32
    if precision == "bf16":
        return torch.bfloat16
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def load_model(source: ModelSource, family: Family, precision: str, device: torch.device,
               device_map: str | None = None) -> torch.nn.Module:
    """Load weights at ``precision`` onto ``device`` (or spread by ``device_map``), in eval mode."""
    dtype = compute_dtype(precision, device)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if precision in ("int8", "int4"):
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = (
            BitsAndBytesConfig(load_in_8bit=True) if precision == "int8"
            else BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=dtype)
        )
        kwargs["device_map"] = device_map or {"": device}
    elif device_map:
        kwargs["device_map"] = device_map
    model = family.load_model(source.path, **kwargs)
    if "device_map" not in kwargs:
        model = model.to(device)
    return model.eval()
