"""Gemma 3: SigLIP vision tower, pooled to ``mm_tokens_per_image`` soft tokens, Gemma 3 language model.

The chat template writes ``<start_of_image>``, which the processor expands to
``\\n\\n<start_of_image><image_soft_token>*N<end_of_image>\\n\\n``. Only the soft tokens carry
the image: ``<start_of_image>``/``<end_of_image>`` are learned text embeddings, and the model's own
``token_type_ids`` (which make the soft tokens of an image attend to each other both ways) leave
them out too, so for pooling they are text.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    Gemma3Config, Gemma3ForConditionalGeneration, Gemma3ImageProcessorPil, Gemma3Processor, Gemma3TextConfig,
)

from promptlam.vlm.families import Family, save_tiny
from promptlam.vlm.families.paligemma import gemma_tokenizer, siglip_vision

# The hub chat template for user/model turns of images and text (it also folds a system turn
# into the first user turn, which the prompts here never have).
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<start_of_turn>{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] | trim }}{% else %}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}<start_of_image>"
    "{% elif item['type'] == 'text' %}{{ item['text'] | trim }}{% endif %}{% endfor %}{% endif %}"
    "<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


class Gemma3(Family):
    name = "gemma3"

    def build_tiny(self, folder: Path) -> None:
        image_tokens = {"image_token": "<image_soft_token>", "boi_token": "<start_of_image>",
                        "eoi_token": "<end_of_image>"}
        tokenizer = gemma_tokenizer(["<start_of_turn>", "<end_of_turn>", *image_tokens.values()],
                                    extra_special_tokens=image_tokens, chat_template=CHAT_TEMPLATE)
        image, patch, tokens = 64, 8, 16  # 8x8 patches, average-pooled 2x2 into 16 soft tokens
        config = Gemma3Config(
            vision_config=siglip_vision(image, patch),
            text_config=Gemma3TextConfig(
                vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=2, num_key_value_heads=1, head_dim=32, query_pre_attn_scalar=32,
                layer_types=["sliding_attention", "full_attention"], sliding_window=128,
                max_position_embeddings=256, pad_token_id=tokenizer.pad_token_id,
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id),
            mm_tokens_per_image=tokens, image_token_index=tokenizer.image_token_id,
            boi_token_index=tokenizer.boi_token_id, eoi_token_index=tokenizer.eoi_token_id,
        )
        torch.manual_seed(0)
        model = Gemma3ForConditionalGeneration(config)
        # Initialised to zeros, the projector would give every frame the same image tokens.
        torch.nn.init.normal_(model.model.multi_modal_projector.mm_input_projection_weight, std=0.02)
        processor = Gemma3Processor(image_processor=Gemma3ImageProcessorPil(size={"height": image, "width": image}),
                                    tokenizer=tokenizer, chat_template=CHAT_TEMPLATE, image_seq_length=tokens)
        save_tiny(folder, model, processor)


FAMILIES = {"gemma3": Gemma3}
