"""Image-embedding targets: CLIP, SigLIP and DINOv2 (the paper's weaker, prompt-free baselines)."""

from __future__ import annotations

from pathlib import Path
import torch
from tokenizers import processors
from transformers import (
    BitImageProcessorPil, CLIPConfig, CLIPImageProcessorPil, CLIPModel, Dinov2Config, Dinov2Model,
    SiglipConfig, SiglipImageProcessorPil, SiglipModel,
)

from promptlam.vlm.families import EmbeddingFamily, save_tiny
from promptlam.vlm.tiny_tokenizer import make_tokenizer

TINY_VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                   image_size=32, patch_size=8)
TINY_TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, vocab_size=128)


class Clip(EmbeddingFamily):
    name = "clip"

    def embed(self, model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        # The projected embedding: the space CLIP aligns with text.
        return model.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output

    def patch_tokens(self, model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return model.vision_model(pixel_values=inputs["pixel_values"]).last_hidden_state[:, 1:]  # after CLS

    def text_patches(self, model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        # OTTER-style: each patch through the layer norm and projection CLIP applies to its pooled
        # token, so that patches and text share the joint space; weights: softmax over patches of
        # CLIP's own logit scale x cosine similarity to the text.
        vision = model.vision_model
        patches = model.visual_projection(vision.post_layernorm(self.patch_tokens(model, inputs)))
        text = model.get_text_features(input_ids=inputs["input_ids"],
                                       attention_mask=inputs["attention_mask"]).pooler_output[:1]
        similarity = torch.nn.functional.normalize(patches, dim=-1) @ torch.nn.functional.normalize(text, dim=-1).T
        weights = torch.softmax(model.logit_scale.exp() * similarity.squeeze(-1), dim=-1)  # [B, N]
        return (weights.unsqueeze(-1) * patches).sum(dim=1)

    def build_tiny(self, folder: Path) -> None:
        torch.manual_seed(0)
        tokenizer = make_tokenizer([], bos="<|startoftext|>", eos="<|endoftext|>", pad="<|endoftext|>")
        # like CLIP's own tokenizer, every text is wrapped in bos ... eos
        tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{tokenizer.bos_token} $A {tokenizer.eos_token}",
            special_tokens=[(tokenizer.bos_token, tokenizer.bos_token_id), (tokenizer.eos_token, tokenizer.eos_token_id)])
        # CLIP's text model pools at the eos token: give it the tokenizer's ids
        text = TINY_TEXT | {"vocab_size": len(tokenizer), "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
                            "pad_token_id": tokenizer.pad_token_id}
        config = CLIPConfig(vision_config=TINY_VISION, text_config=text, projection_dim=24)
        image_processor = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
        save_tiny(folder, CLIPModel(config), image_processor)
        tokenizer.save_pretrained(folder)  # for text_patches: AutoProcessor then finds a CLIPProcessor


class Siglip(EmbeddingFamily):
    name = "siglip"

    def embed(self, model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return model.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output

    def patch_tokens(self, model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return model.vision_model(pixel_values=inputs["pixel_values"]).last_hidden_state  # no CLS token

    def build_tiny(self, folder: Path) -> None:
        torch.manual_seed(0)
        config = SiglipConfig(vision_config=TINY_VISION, text_config=TINY_TEXT)
        save_tiny(folder, SiglipModel(config), SiglipImageProcessorPil(size={"height": 32, "width": 32}))


class Dinov2(EmbeddingFamily):
    name = "dinov2"

    def embed(self, model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        # DINOv2's pooled output is the layer-normed CLS token.
        return model(pixel_values=inputs["pixel_values"]).pooler_output

    def patch_tokens(self, model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return model(pixel_values=inputs["pixel_values"]).last_hidden_state[:, 1:]  # layer-normed, after CLS

    def build_tiny(self, folder: Path) -> None:
        torch.manual_seed(0)
        config = Dinov2Config(**TINY_VISION)
        processor = BitImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                                         image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
        save_tiny(folder, Dinov2Model(config), processor)


FAMILIES = {"clip": Clip, "siglip": Siglip, "dinov2": Dinov2}
