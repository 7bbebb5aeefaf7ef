"""One latent action model family with interchangeable forward models.

IDM: an IMPALA-style encoder (or, for the `-trans` methods, a small vision transformer) over the
frame stacks of o_t and o_{t+k} gives a continuous latent action z (optionally vector-quantised,
as the original LAPO). FDM: from o_t and z, by the head of
the method (``promptlam.methods.METHODS``), it predicts
  - `pixels` head (`lapo`, `lapo-clean`): the next target frame as o_t plus a change (`absolute`)
    or the target frames' change itself (`delta`), by a U-Net decoder over the encoder's maps
    with the latent added at the coarsest;
  - `ema` head (`laom`): the next frame's embedding by an EMA copy of the observation encoder;
  - `vector` head (`target`, `target-clean`): a standardised target vector (a VLM representation,
    an embedding, the state, a downsampled frame) in its formulation; `conditioned` also feeds
    the target of o_t to the FDM.
IDM and FDM always read the same observations; only what the FDM predicts changes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from promptlam.config import LamConfig
from promptlam.methods import METHODS

MEMORY_FORMAT = torch.channels_last
"""Layout of frames and convolution weights: channels last is what oneDNN's convolutions run
fastest in (bench/lam.py measures it against the default layout)."""


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class ImpalaEncoder(nn.Module):
    """Stages of conv -> 3x3 max-pool (stride 2) -> two residual blocks; returns the feature map."""

    def __init__(self, in_channels: int, channels: list[int]) -> None:
        super().__init__()
        stages = []
        for out_channels in channels:
            stages += [nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.MaxPool2d(3, 2, padding=1),
                       ResidualBlock(out_channels), ResidualBlock(out_channels)]
            in_channels = out_channels
        self.stages = nn.Sequential(*stages)
        self.out_channels = in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.stages(x))

    def flat_size(self, frame_size: int) -> int:
        """Length of the flattened output for square frames of ``frame_size`` pixels."""
        for _ in range(len(self.stages) // 4):
            frame_size = (frame_size + 1) // 2
        return self.out_channels * frame_size * frame_size

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The output of every stage (highest resolution first), for a decoder's skip connections."""
        maps = []
        for index in range(0, len(self.stages), 4):
            x = self.stages[index:index + 4](x)
            maps.append(F.relu(x))
        return maps


class TransformerEncoder(nn.Module):
    """A small vision transformer: square patches of the input embedded linearly, a class token
    and learned positions, pre-norm encoder layers; returns the class token [B, width]."""

    def __init__(self, in_channels: int, frame_size: int, width: int, layers: int, heads: int, patch: int) -> None:
        super().__init__()
        if frame_size % patch:
            raise ValueError(f"lam.patch_size: {patch} does not divide the frame size {frame_size}")
        self.patchify = nn.Conv2d(in_channels, width, patch, stride=patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, width))
        self.position = nn.Parameter(torch.randn(1, (frame_size // patch) ** 2 + 1, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.layers = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patchify(x).flatten(2).transpose(1, 2)  # [B, patches, width]
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), tokens], dim=1) + self.position
        return self.norm(self.layers(tokens)[:, 0])


class VectorQuantizer(nn.Module):
    """Groups of latent dims snapped to their nearest code (straight-through), LAPO style."""

    def __init__(self, dim: int, groups: int, codes: int, commitment: float = 0.25) -> None:
        super().__init__()
        if dim % groups:
            raise ValueError(f"lam.vq_groups ({groups}) must divide the latent dim ({dim})")
        self.groups, self.commitment = groups, commitment
        self.codebook = nn.Parameter(torch.randn(groups, codes, dim // groups) * 0.1)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        parts = z.view(z.shape[0], self.groups, -1)  # [B, G, D/G]
        distances = torch.cdist(parts.transpose(0, 1), self.codebook)  # [G, B, C]
        codes = distances.argmin(-1)  # [G, B]
        quantised = torch.stack([self.codebook[g, codes[g]] for g in range(self.groups)], dim=1)
        loss = F.mse_loss(quantised, parts.detach()) + self.commitment * F.mse_loss(parts, quantised.detach())
        return (parts + (quantised - parts).detach()).reshape_as(z), loss


def mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                         nn.Linear(hidden, out_dim))


@dataclass
class LamOutput:
    loss: torch.Tensor
    """Total training loss (forward-model loss plus the VQ loss)."""
    fdm_loss: torch.Tensor
    latent: torch.Tensor
    """Latent actions [B, latent_dim] (after quantisation)."""


class LatentActionModel(nn.Module):
    """IDM + FDM. Frames come in as uint8 stacks [B, S, H, W, 3]; ``observe`` scales them to [-1, 1]."""

    def __init__(self, config: LamConfig, method: str, latent_dim: int, frame_size: int,
                 target_dim: int | None = None, formulation: str = "absolute") -> None:
        super().__init__()
        self.method, self.latent_dim, self.formulation = method, latent_dim, formulation
        self.head = METHODS[method].head
        stack = 3 * config.frame_stack
        hidden = config.hidden_dim
        if METHODS[method].idm == "transformer":
            self.idm_encoder = TransformerEncoder(2 * stack, frame_size, hidden, config.transformer_layers,
                                                  config.transformer_heads, config.patch_size)
            flat = hidden
        else:
            self.idm_encoder = ImpalaEncoder(2 * stack, config.encoder_channels)
            flat = self.idm_encoder.flat_size(frame_size)
        self.idm_head = nn.Sequential(nn.Flatten(), nn.Linear(flat, hidden), nn.GELU(), nn.Linear(hidden, latent_dim))
        self.quantizer = VectorQuantizer(latent_dim, config.vq_groups, config.vq_codes) if config.vq else None

        self.obs_encoder = ImpalaEncoder(stack, config.encoder_channels)
        channels = self.obs_encoder.out_channels
        if self.head == "pixels":
            # U-Net decoder (as LAPO's): the latent is broadcast over the coarsest encoder map, and
            # each upsampling step also sees the encoder map of its resolution (and, last, the frames),
            # so that small, local changes such as a gripper's pixel of motion can be drawn.
            self.latent_to_map = nn.Linear(latent_dim, channels)
            skips = [*config.encoder_channels[:-1][::-1], stack]
            self.up_convs = nn.ModuleList()
            for skip_channels in skips:
                out_channels = max(16, skip_channels)
                self.up_convs.append(nn.Sequential(nn.Conv2d(channels + skip_channels, out_channels, 3, padding=1),
                                                   nn.GELU(), nn.Conv2d(out_channels, out_channels, 3, padding=1),
                                                   nn.GELU()))
                channels = out_channels
            self.to_change = nn.Conv2d(channels, 3, 1)
        else:
            self.obs_head = nn.Sequential(nn.Flatten(), nn.Linear(self.obs_encoder.flat_size(frame_size), hidden), nn.GELU())
            out_dim = hidden if self.head == "ema" else target_dim
            if out_dim is None:
                raise ValueError(f"method {method!r} needs the target's dimension")
            conditioned = out_dim if formulation == "conditioned" else 0
            self.fdm = mlp(hidden + latent_dim + conditioned, hidden, out_dim)
            if self.head == "ema":
                self.target_encoder = copy.deepcopy(nn.ModuleDict({"encoder": self.obs_encoder, "head": self.obs_head}))
                self.target_encoder.requires_grad_(False)
        self.to(memory_format=MEMORY_FORMAT)

    @staticmethod
    def observe(frames: torch.Tensor) -> torch.Tensor:
        """uint8 frame stacks [B, S, H, W, 3] (as ``TransitionData`` gathers them) to the
        convolutions' input: [B, 3S, H, W] in [-1, 1], laid out in ``MEMORY_FORMAT``.

        One copy reorders and converts to float, then the scaling is in place: the frames are
        never transposed as bytes first (that was a fifth of a LAM step on one core)."""
        batch, stack, height, width, colours = frames.shape
        if MEMORY_FORMAT == torch.channels_last:
            order, shape, back = (0, 2, 3, 1, 4), (batch, height, width, stack * colours), (0, 3, 1, 2)
        else:
            order, shape, back = (0, 1, 4, 2, 3), (batch, stack * colours, height, width), (0, 1, 2, 3)
        scaled = frames.permute(order).to(torch.float32, memory_format=torch.contiguous_format)
        return scaled.view(shape).permute(back).div_(127.5).sub_(1.0)

    def infer_latent(self, obs: torch.Tensor, future: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """IDM: latent action between frame stacks ``obs`` and ``future`` (uint8), and the VQ loss."""
        # Joined as bytes along the stack, then scaled once (the same numbers as scaling each first).
        z = self.idm_head(self.idm_encoder(self.observe(torch.cat([obs, future], dim=1))))
        if self.quantizer is None:
            return z, z.new_zeros(())
        return self.quantizer(z)

    def forward(self, batch: dict[str, torch.Tensor]) -> LamOutput:
        """Losses for a batch of ``TransitionData.batch`` (on the model's device): ``obs`` = stack
        at t, ``future`` = stack at t+k, ``next_obs`` = target frames ending at t+1, ``target_obs``
        = the target frame at t (when they differ from ``obs``), ``target`` / ``target_now`` =
        standardised vector targets (frames: uint8 [B, S, H, W, 3])."""
        z, vq_loss = self.infer_latent(batch["obs"], batch["future"])
        observed = self.observe(batch["obs"])
        if self.head == "pixels":
            *skips, coarsest = self.obs_encoder.feature_maps(observed)
            x = coarsest + self.latent_to_map(z)[:, :, None, None]
            for up_conv, skip in zip(self.up_convs, [*skips[::-1], observed]):
                x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
                x = up_conv(torch.cat([x, skip], dim=1))
            change = self.to_change(x)
            following = self.observe(batch["next_obs"][:, -1:])
            if self.formulation == "delta":
                # The change of the target frames: a clean-twin target no longer asks the decoder
                # to repaint the distracted background of o_t.
                current = self.observe(batch.get("target_obs", batch["obs"])[:, -1:])
                fdm_loss = F.mse_loss(change, following - current)
            else:
                fdm_loss = F.mse_loss(observed[:, -3:] + change, following)
        else:
            inputs = [self.obs_head(self.obs_encoder(observed)), z]
            if self.formulation == "conditioned":
                inputs.append(batch["target_now"])
            predicted = self.fdm(torch.cat(inputs, dim=-1))
            if self.head == "ema":
                with torch.no_grad():
                    target = self.target_encoder["head"](self.target_encoder["encoder"](self.observe(batch["next_obs"])))
            else:
                target = batch["target"]
            fdm_loss = F.mse_loss(predicted, target)
        return LamOutput(fdm_loss + vq_loss, fdm_loss, z)

    @torch.no_grad()
    def update_target_encoder(self, tau: float = 0.01) -> None:
        """LAOM: the target encoder follows the online encoder by exponential moving average."""
        if self.head != "ema":
            return
        online = list(self.obs_encoder.parameters()) + list(self.obs_head.parameters())
        target = list(self.target_encoder["encoder"].parameters()) + list(self.target_encoder["head"].parameters())
        torch._foreach_lerp_(target, online, tau)
