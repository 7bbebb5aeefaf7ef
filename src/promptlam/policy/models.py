"""The policy (frame stack and task -> latent or true action) and the latent -> action decoder."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from promptlam.config import BcConfig, DecoderConfig
from promptlam.lam.models import MEMORY_FORMAT, ImpalaEncoder, LatentActionModel, mlp


class Policy(nn.Module):
    """An IMPALA-style encoder of the uint8 frame stack o_t, with a one-hot of the task (a
    multi-task policy cannot always tell tasks that share objects apart), to an output vector."""

    def __init__(self, config: BcConfig, frame_stack: int, frame_size: int, n_tasks: int, out_dim: int) -> None:
        super().__init__()
        self.n_tasks = n_tasks
        self.encoder = ImpalaEncoder(3 * frame_stack, config.encoder_channels)
        self.head = mlp(self.encoder.flat_size(frame_size) + n_tasks, config.hidden_dim, out_dim)
        self.to(memory_format=MEMORY_FORMAT)  # as the LAM's encoders

    def forward(self, frames: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
        features = self.encoder(LatentActionModel.observe(frames)).flatten(1)
        return self.head(torch.cat([features, F.one_hot(task, self.n_tasks).to(features.dtype)], dim=-1))


def action_decoder(config: DecoderConfig, latent_dim: int, action_dim: int) -> nn.Sequential:
    """LAOM's decoder: an MLP with two hidden layers from a latent action to the true action."""
    return mlp(latent_dim, config.hidden_dim, action_dim)
