"""InternVL 3 (transformers-native layout, e.g. `OpenGVLab/InternVL3-1B-hf`): InternViT on image
tiles, pixel shuffle, MLP projector, Qwen2 language model."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    GotOcr2ImageProcessorPil, InternVLConfig, InternVLForConditionalGeneration, InternVLProcessor,
)

from promptlam.vlm.families import save_tiny
from promptlam.vlm.families.qwen2_5_vl import ImageOnlyProcessorFamily, image_only
from promptlam.vlm.tiny_tokenizer import make_tokenizer

# The hub model's template (no default system prompt); the processor expands each <IMG_CONTEXT>.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}{% else %}{% for part in message['content'] %}{% if part['type'] == 'image' %}"
    "<IMG_CONTEXT>\n{% elif part['type'] == 'video' %}<video>\n{% elif part['type'] == 'text' %}{{ part['text'] }}"
    "{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class InternVL(ImageOnlyProcessorFamily):
    name = "internvl"
    processor_class = InternVLProcessor

    def build_tiny(self, folder: Path) -> None:
        image_tokens = {"start_image_token": "<img>", "end_image_token": "</img>",
                        "context_image_token": "<IMG_CONTEXT>", "video_token": "<video>"}
        tokenizer = make_tokenizer(["<|endoftext|>", "<|im_start|>", "<|im_end|>", *image_tokens.values()],
                                   bos=None, eos="<|im_end|>", pad="<|endoftext|>",
                                   extra_special_tokens=image_tokens, chat_template=CHAT_TEMPLATE)
        # 16 px tiles of 4 px patches, pixel-shuffled 2x2: 4 tokens a tile. A 32 px frame is cut into
        # 2x2 tiles plus a thumbnail, so the tiny model runs the tiling that large frames get.
        tile, patch, downsample = 16, 4, 0.5
        tokens_per_tile = int((tile // patch) ** 2 * downsample ** 2)
        config = InternVLConfig(
            vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                               image_size=tile, patch_size=patch),
            text_config=dict(model_type="qwen2", vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                             num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                             max_position_embeddings=512, bos_token_id=None, eos_token_id=tokenizer.eos_token_id,
                             pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True),
            image_token_id=tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>"), image_seq_length=tokens_per_tile,
            downsample_ratio=downsample,
        )
        torch.manual_seed(0)
        model = InternVLForConditionalGeneration(config)
        image_processor = GotOcr2ImageProcessorPil(size={"height": tile, "width": tile}, crop_to_patches=True,
                                                   min_patches=1, max_patches=12)
        processor = image_only(InternVLProcessor)(image_processor=image_processor, tokenizer=tokenizer,
                                                  image_seq_length=tokens_per_tile, chat_template=CHAT_TEMPLATE)
        save_tiny(folder, model, processor)


FAMILIES = {"internvl": InternVL}
