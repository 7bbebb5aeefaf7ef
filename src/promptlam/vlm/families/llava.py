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


def build_llava(folder: Path, *, width: int, layers: int, heads: int, kv_heads: int, image: int, patch: int,
                text_width: int | None = None, text_layers: int | None = None, text_heads: int | None = None,
                text_intermediate: int | None = None, dtype: torch.dtype = torch.float32,
                device: str = "cpu") -> None:
    """Save a randomly initialised Llava (CLIP vision tower, Llama language model) of the given size.

    The language model has the vision tower's sizes unless ``text_*`` says otherwise; ``dtype`` and
    ``device`` say how and where the random weights are made (bench/targets.py makes its 7B-sized
    one in bf16 on the GPU: 28 GB of fp32 weights would not fit a development machine).
    """
    tokenizer = make_tokenizer(["<image>"], extra_special_tokens={"image_token": "<image>"},
                               chat_template=CHAT_TEMPLATE)
    text_width = text_width or width
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=width, intermediate_size=4 * width, num_hidden_layers=layers,
                                       num_attention_heads=heads, image_size=image, patch_size=patch),
        text_config=LlamaConfig(vocab_size=len(tokenizer), hidden_size=text_width,
                                intermediate_size=text_intermediate or 2 * text_width,
                                num_hidden_layers=text_layers or layers, num_attention_heads=text_heads or heads,
                                num_key_value_heads=kv_heads, max_position_embeddings=1024,
                                pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                                eos_token_id=tokenizer.eos_token_id),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default", vision_feature_layer=-1,
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = LlavaForConditionalGeneration(config).to(dtype)
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
