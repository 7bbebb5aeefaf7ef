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


class Llava(Family):
    name = "llava"

    def build_tiny(self, folder: Path) -> None:
        tokenizer = make_tokenizer(["<image>"], extra_special_tokens={"image_token": "<image>"},
                                   chat_template=CHAT_TEMPLATE)
        patch, image = 8, 32
        config = LlavaConfig(
            vision_config=CLIPVisionConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                           num_attention_heads=2, image_size=image, patch_size=patch),
            # 64 wide, not 32: bitsandbytes' 4-bit blocks hold 64 weights.
            text_config=LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                                    num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                                    max_position_embeddings=256, pad_token_id=tokenizer.pad_token_id,
                                    bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id),
            image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
            vision_feature_select_strategy="default", vision_feature_layer=-1,
        )
        torch.manual_seed(0)
        model = LlavaForConditionalGeneration(config)
        processor = LlavaProcessor(
            image_processor=CLIPImageProcessorPil(size={"shortest_edge": image},
                                                  crop_size={"height": image, "width": image}),
            tokenizer=tokenizer, patch_size=patch, vision_feature_select_strategy="default",
            num_additional_image_tokens=1, chat_template=CHAT_TEMPLATE,
        )
        save_tiny(folder, model, processor)


FAMILIES = {"llava": Llava}
