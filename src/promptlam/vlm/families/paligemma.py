"""PaliGemma 2: SigLIP vision tower, linear projector, Gemma 2 language model.

No chat format: the processor reads ``<image>`` + prompt and makes it
``<image>*N <bos> prompt \\n``. The image and the prompt form a prefix that attends both ways,
marked by ``token_type_ids`` 0, which the model needs to build that mask.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from PIL import Image
from transformers import (
    Gemma2Config, PaliGemmaConfig, PaliGemmaForConditionalGeneration, PaliGemmaProcessor, PreTrainedTokenizerFast,
    SiglipImageProcessorPil, SiglipVisionConfig,
)

from promptlam.vlm.families import Family, save_tiny
from promptlam.vlm.tiny_tokenizer import make_tokenizer


def gemma_tokenizer(special_tokens: list[str], **kwargs: Any) -> PreTrainedTokenizerFast:
    """A tiny tokenizer with Gemma's special tokens, adding bos as Gemma's does."""
    return make_tokenizer(special_tokens, bos="<bos>", eos="<eos>", pad="<pad>", unk="<unk>",
                          add_bos_token=True, **kwargs)


def siglip_vision(image_size: int, patch_size: int) -> SiglipVisionConfig:
    """A tiny SigLIP vision tower; VLMs read its patch states, so without the pooling head.

    64 wide, as the language models here, not 32: bitsandbytes' 4-bit blocks hold 64 weights.
    """
    return SiglipVisionConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                              image_size=image_size, patch_size=patch_size, vision_use_head=False)


class PaliGemma(Family):
    name = "paligemma"

    def render_prompt(self, processor: Any, prompt: str) -> str:
        return processor.image_token + prompt

    def make_inputs(self, processor: Any, images: list[Image.Image], text: str) -> dict[str, torch.Tensor]:
        inputs = dict(processor(images=[[image] for image in images], text=[text] * len(images),
                                return_tensors="pt", padding=True))
        inputs.pop("labels", None)  # kept by the processor for old training code; the model would compute a loss
        return inputs

    def build_tiny(self, folder: Path) -> None:
        image, patch = 32, 8
        tokenizer = gemma_tokenizer(["<image>"])
        processor = PaliGemmaProcessor(  # adds PaliGemma's <loc>/<seg> tokens to the tokenizer
            image_processor=SiglipImageProcessorPil(size={"height": image, "width": image},
                                                    image_seq_length=(image // patch) ** 2),
            tokenizer=tokenizer)
        text = Gemma2Config(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                            num_attention_heads=2, num_key_value_heads=1, head_dim=32, query_pre_attn_scalar=32,
                            max_position_embeddings=256, pad_token_id=tokenizer.pad_token_id,
                            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
        config = PaliGemmaConfig(vision_config=siglip_vision(image, patch), text_config=text,
                                 image_token_index=processor.image_token_id, vocab_size=len(tokenizer),
                                 projection_dim=64, hidden_size=64)
        torch.manual_seed(0)
        save_tiny(folder, PaliGemmaForConditionalGeneration(config), processor)


FAMILIES = {"paligemma": PaliGemma}
