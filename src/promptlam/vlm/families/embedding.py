"""Image-embedding targets: CLIP, SigLIP and DINOv2 (the paper's weaker, prompt-free baselines)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import (
    BitImageProcessorPil, CLIPConfig, CLIPImageProcessorPil, CLIPModel, Dinov2Config, Dinov2Model,
    SiglipConfig, SiglipImageProcessorPil, SiglipModel,
)

from promptlam.vlm.families import EmbeddingFamily, save_tiny

TINY_VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                   image_size=32, patch_size=8)
TINY_TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, vocab_size=128)


class _ImageOnly(EmbeddingFamily):
    """Only the image side is used: load the image processor, never the tokenizer."""

    def load_processor(self, path: str) -> Any:
        return transformers.AutoImageProcessor.from_pretrained(path, local_files_only=True)


class Clip(_ImageOnly):
    name = "clip"

    def embed(self, model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        # The projected embedding: the space CLIP aligns with text.
        return model.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output

    def build_tiny(self, folder: Path) -> None:
        torch.manual_seed(0)
        config = CLIPConfig(vision_config=TINY_VISION, text_config=TINY_TEXT, projection_dim=24)
        processor = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
        save_tiny(folder, CLIPModel(config), processor)


class Siglip(Clip):
    name = "siglip"

    def build_tiny(self, folder: Path) -> None:
        torch.manual_seed(0)
        config = SiglipConfig(vision_config=TINY_VISION, text_config=TINY_TEXT)
        save_tiny(folder, SiglipModel(config), SiglipImageProcessorPil(size={"height": 32, "width": 32}))


class Dinov2(_ImageOnly):
    name = "dinov2"

    def embed(self, model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        # DINOv2's pooled output is the layer-normed CLS token.
        return model(pixel_values=inputs["pixel_values"]).pooler_output

    def build_tiny(self, folder: Path) -> None:
        torch.manual_seed(0)
        config = Dinov2Config(**TINY_VISION)
        processor = BitImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                                         image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
        save_tiny(folder, Dinov2Model(config), processor)


FAMILIES = {"clip": Clip, "siglip": Siglip, "dinov2": Dinov2}
