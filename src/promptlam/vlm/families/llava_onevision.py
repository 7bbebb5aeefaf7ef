"""LLaVA-OneVision: SigLIP on an anyres grid of crops plus the whole image, MLP projector, Qwen2
language model."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration, LlavaOnevisionImageProcessorPil,
    LlavaOnevisionProcessor,
)

from promptlam.vlm.families import save_tiny
from promptlam.vlm.families.qwen2_5_vl import ImageOnlyProcessorFamily, image_only
from promptlam.vlm.tiny_tokenizer import make_tokenizer

# The hub models' template, less its generation markers for training masks: images, then videos,
# then each text on a new line.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }} {% if message['content'] is string %}"
    "{{ message['content'] }}{% else %}"
    "{% for part in message['content'] | selectattr('type', 'equalto', 'image') %}<image>{% endfor %}"
    "{% for part in message['content'] | selectattr('type', 'equalto', 'video') %}<video>{% endfor %}"
    "{% for part in message['content'] | selectattr('type', 'equalto', 'text') %}{{ '\\n' + part['text'] }}{% endfor %}"
    "{% endif %}<|im_end|>{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class LlavaOnevision(ImageOnlyProcessorFamily):
    name = "llava_onevision"
    processor_class = LlavaOnevisionProcessor

    def build_tiny(self, folder: Path) -> None:
        tokenizer = make_tokenizer(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"],
                                   bos=None, eos="<|im_end|>", pad="<|endoftext|>",
                                   extra_special_tokens={"image_token": "<image>", "video_token": "<video>"},
                                   chat_template=CHAT_TEMPLATE)
        # 16 px crops of 4 px patches (16 tokens a crop) on grids up to 2x2 crops: a 32 px frame is a
        # 2x2 grid (8x8 tokens plus a newline token a row) after the whole frame's 16 tokens, 88 in all.
        crop, patch = 16, 4
        pinpoints = [[crop * rows, crop * cols] for rows in (1, 2) for cols in (1, 2)]
        config = LlavaOnevisionConfig(
            vision_config=dict(model_type="siglip_vision_model", hidden_size=32, intermediate_size=64,
                               num_hidden_layers=2, num_attention_heads=2, image_size=crop, patch_size=patch,
                               vision_use_head=False),
            text_config=dict(model_type="qwen2", vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                             num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                             max_position_embeddings=512, bos_token_id=None, eos_token_id=tokenizer.eos_token_id,
                             pad_token_id=tokenizer.pad_token_id),
            image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
            video_token_index=tokenizer.convert_tokens_to_ids("<video>"),
            image_grid_pinpoints=pinpoints, vision_feature_select_strategy="full", vision_feature_layer=-1,
            vision_aspect_ratio="anyres_max_9",
        )
        torch.manual_seed(0)
        model = LlavaOnevisionForConditionalGeneration(config)
        image_processor = LlavaOnevisionImageProcessorPil(size={"height": crop, "width": crop},
                                                          image_grid_pinpoints=pinpoints)
        processor = image_only(LlavaOnevisionProcessor)(
            image_processor=image_processor, tokenizer=tokenizer, num_image_tokens=(crop // patch) ** 2,
            vision_feature_select_strategy="full", vision_aspect_ratio="anyres_max_9", chat_template=CHAT_TEMPLATE)
        save_tiny(folder, model, processor)


FAMILIES = {"llava_onevision": LlavaOnevision}
