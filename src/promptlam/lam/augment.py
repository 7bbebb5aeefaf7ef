"""LAOM's augmentations: random shift, rotation and perspective, the same for all frames of a sample."""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F


def random_homographies(batch: int, generator: torch.Generator, shift: float = 4 / 64, degrees: float = 5.0,
                        perspective: float = 0.05) -> torch.Tensor:
    """[B, 3, 3] maps from output to input coordinates in [-1, 1]: shift, rotation, perspective."""
    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator) * 2 - 1

    angle = uniform(batch) * math.radians(degrees)
    matrices = torch.zeros(batch, 3, 3)
    matrices[:, 0, 0], matrices[:, 0, 1] = torch.cos(angle), -torch.sin(angle)
    matrices[:, 1, 0], matrices[:, 1, 1] = torch.sin(angle), torch.cos(angle)
    matrices[:, :2, 2] = uniform(batch, 2) * 2 * shift
    matrices[:, 2, :2] = uniform(batch, 2) * perspective
    matrices[:, 2, 2] = 1.0
    return matrices


def augment(stacks: list[torch.Tensor], generator: torch.Generator) -> list[torch.Tensor]:
    """Warp uint8 frame stacks [B, S, H, W, 3] (all frames of a sample alike); returns uint8
    stacks of the same shape, on the stacks' device (the warps are drawn on the CPU)."""
    batch, _, height, width, _ = stacks[0].shape
    homography = random_homographies(batch, generator)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
    points = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1).reshape(1, -1, 3)  # [1, HW, 3]
    mapped = points @ homography.transpose(1, 2)  # [B, HW, 3]
    grid = (mapped[..., :2] / mapped[..., 2:].clamp(min=1e-6)).reshape(batch, height, width, 2)
    warped = []
    for stack in stacks:
        _, frames, _, _, colours = stack.shape
        planes = stack.permute(0, 1, 4, 2, 3).reshape(batch, frames * colours, height, width).float()
        out = F.grid_sample(planes, grid.to(stack.device), mode="bilinear", padding_mode="border", align_corners=True)
        out = out.round().clamp(0, 255).to(torch.uint8).view(batch, frames, colours, height, width)
        warped.append(out.permute(0, 1, 3, 4, 2).contiguous())
    return warped
