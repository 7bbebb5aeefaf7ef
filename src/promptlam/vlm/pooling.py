"""Which hidden layer, and how its tokens become one vector per frame."""

from __future__ import annotations

import torch

from promptlam.errors import UserError


def resolve_layer(spec: int | str, num_layers: int) -> int:
    """Index into ``hidden_states`` (length ``num_layers + 1``, embeddings first) for ``spec``."""
    if spec == "middle":
        return num_layers // 2
    if not isinstance(spec, int) or not -(num_layers + 1) <= spec <= num_layers:
        raise UserError(
            f"layer {spec!r} is out of range: the model has {num_layers} layers "
            f"(use -1..-{num_layers + 1}, 0..{num_layers} or 'middle')"
        )
    return spec % (num_layers + 1)


def pool(hidden: torch.Tensor, attention: torch.Tensor, image: torch.Tensor, mode: str) -> torch.Tensor:
    """Pool ``hidden`` [B, T, D] over tokens into [B, D].

    ``attention`` [B, T] marks real (non-padding) tokens, ``image`` [B, T] image tokens.
    Modes: ``mean_all``, ``mean_image``, ``mean_text`` (attended tokens that are not image
    tokens), ``last`` (the last attended token, whichever side the padding is on).
    """
    attention = attention.bool()
    if mode == "last":
        positions = torch.arange(hidden.shape[1], device=hidden.device).expand_as(attention)
        last = torch.where(attention, positions, -1).max(dim=1).values
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    masks = {"mean_all": attention, "mean_image": attention & image.bool(), "mean_text": attention & ~image.bool()}
    if mode not in masks:
        raise UserError(f"unknown pooling {mode!r}: expected one of {', '.join([*masks, 'last'])}")
    mask = masks[mode]
    counts = mask.sum(dim=1, keepdim=True)
    if (counts == 0).any():
        raise UserError(f"pooling {mode!r} found no such tokens in a sequence (does the model mark image tokens?)")
    weights = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(dim=1) / counts.to(hidden.dtype)


def grid_pool(patches: torch.Tensor, grid: int) -> torch.Tensor:
    """Patch features [B, N, D] (a square raster) averaged over ``grid`` x ``grid`` cells of the
    image, cells concatenated in raster order: [B, grid * grid * D]."""
    batch, count, dim = patches.shape
    side = round(count ** 0.5)
    if side * side != count:
        raise ValueError(f"{count} patches are not a square grid")
    if grid > side:
        raise UserError(f"grid: {grid} cells per side, but the image has only {side} patches per side")
    image = patches.reshape(batch, side, side, dim).permute(0, 3, 1, 2)
    cells = torch.nn.functional.adaptive_avg_pool2d(image, grid)
    return cells.permute(0, 2, 3, 1).reshape(batch, grid * grid * dim)
