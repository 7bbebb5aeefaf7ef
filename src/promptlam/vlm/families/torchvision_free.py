"""torchvision's image operations in plain torch, for image processors that call torchvision.

torchvision cannot be installed beside the CPU build of torch that development machines and CI
use. transformers' Molmo2 and Phi-4 image processors call torchvision only to resize and to
normalize; these do the same in torch, as torchvision does them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F
from transformers.image_utils import PILImageResampling

_MODES = {PILImageResampling.BILINEAR: "bilinear", PILImageResampling.BICUBIC: "bicubic"}


def torch_resize(image: torch.Tensor, size: tuple[int, int], resample: Any, antialias: bool) -> torch.Tensor:
    """``torchvision.transforms.v2.functional.resize`` of a [..., C, H, W] tensor, bilinear or bicubic."""
    mode = _MODES.get(PILImageResampling(resample))
    if mode is None:
        raise ValueError(f"only bilinear and bicubic resizing are supported without torchvision, got {resample!r}")
    if tuple(size) == tuple(image.shape[-2:]):
        return image
    dtype, shape = image.dtype, image.shape
    # torchvision resizes float32/64 as they are, uint8 natively on CPUs with the fast kernel, else in float32.
    native = dtype in (torch.float32, torch.float64) or (
        image.device.type == "cpu" and dtype == torch.uint8
        and (mode == "bicubic" or "AVX2" in torch.backends.cpu.get_cpu_capability())
    )
    batch = image.reshape(-1, *shape[-3:])
    out = F.interpolate(batch if native else batch.float(), size=list(size), mode=mode,
                        align_corners=False, antialias=antialias)
    if not native:
        if mode == "bicubic" and dtype == torch.uint8:
            out = out.clamp_(0, 255)
        if not dtype.is_floating_point:
            out = out.round_()
        out = out.to(dtype)
    return out.reshape(*shape[:-2], *size)


class TorchvisionFree:
    """Mixin for a transformers ``TorchvisionBackend`` image processor: the torchvision calls it makes
    for PIL images (resize, normalize), done in torch as torchvision does them."""

    def resize(self, image: torch.Tensor, size: Any, resample: Any = None, antialias: bool = True,
               **kwargs: Any) -> torch.Tensor:
        if not (size.height and size.width):
            raise ValueError(f"only a height and width size is supported without torchvision, got {size}")
        resample = PILImageResampling.BILINEAR if resample is None else resample
        return torch_resize(image, (size.height, size.width), resample, antialias)

    def normalize(self, image: torch.Tensor, mean: Any, std: Any, inplace: bool = False,
                  **kwargs: Any) -> torch.Tensor:
        mean = torch.as_tensor(mean, dtype=image.dtype, device=image.device).view(-1, 1, 1)
        std = torch.as_tensor(std, dtype=image.dtype, device=image.device).view(-1, 1, 1)
        return (image.sub_(mean) if inplace else image.sub(mean)).div_(std)
