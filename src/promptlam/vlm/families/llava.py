"""LLaVA (1.5 style): CLIP vision tower, projector, Llama language model."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    CLIPImageProcessorPil, CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration,
    LlavaProcessor,
)

from promptlam.vlm.families import Family, save_tiny
from promptlam.vlm.tiny_tokenizer import make_tokenizer

CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'].upper() }}: "
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>\n"
    "{% else %}{{ part['text'] }}{% endif %}{% endfor %} {% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


def build_llava(folder: Path, *, width: int, layers: int, heads: int, kv_heads: int, image: int, patch: int) -> None:
    """Save a randomly initialised Llava (CLIP vision tower, Llama language model) of the given size."""
    tokenizer = make_tokenizer(["<image>"], extra_special_tokens={"image_token": "<image>"},
                               chat_template=CHAT_TEMPLATE)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=width, intermediate_size=4 * width, num_hidden_layers=layers,
                                       num_attention_heads=heads, image_size=image, patch_size=patch),
        text_config=LlamaConfig(vocab_size=len(tokenizer), hidden_size=width, intermediate_size=2 * width,
                                num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                                max_position_embeddings=1024, pad_token_id=tokenizer.pad_token_id,
                                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default", vision_feature_layer=-1,
    )
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config)
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessorPil(size={"shortest_edge": image}, crop_size={"height": image, "width": image}),
        tokenizer=tokenizer, patch_size=patch, vision_feature_select_strategy="default",
        num_additional_image_tokens=1, chat_template=CHAT_TEMPLATE,
    )
    save_tiny(folder, model, processor)


class Llava(Family):
    name = "llava"

    def build_tiny(self, folder: Path) -> None:
        # 64 wide, not 32: bitsandbytes' 4-bit blocks hold 64 weights.
        build_llava(folder, width=64, layers=2, heads=2, kv_heads=2, image=32, patch=8)


FAMILIES = {"llava": Llava}
