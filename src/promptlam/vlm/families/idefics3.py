"""Idefics3 and SmolVLM: SigLIP-style vision tower, pixel-shuffle connector, Llama language model.

SmolVLM is Idefics3 with its own image processor class and smaller models; the prompt layout
(``<fake_token_around_image><global-img><image>*N<fake_token_around_image>`` per image, or
per tile when splitting) and the model inputs are the same, so one class serves both.
Only ``<image>`` tokens are image tokens: the tokens around them are learned text embeddings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import (
    Idefics3Config, Idefics3ForConditionalGeneration, Idefics3ImageProcessorPil, Idefics3Processor,
    Idefics3VisionConfig, LlamaConfig, SmolVLMConfig, SmolVLMForConditionalGeneration,
    SmolVLMImageProcessorPil, SmolVLMVisionConfig,
)

from promptlam.vlm.families import Family, save_tiny
from promptlam.vlm.tiny_tokenizer import make_tokenizer

SPECIAL_TOKENS = ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"] + [
    f"<row_{row}_col_{col}>" for row in range(1, 7) for col in range(1, 7)]

# The hub chat template of both families, after the text that opens it (their bos token).
CHAT_TEMPLATE = (
    "{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


class Idefics3(Family):
    name = "idefics3"
    bos = "<|begin_of_text|>"
    add_bos_token = True  # as the Llama 3 tokenizer of the hub models
    tiny_classes = (Idefics3Config, Idefics3VisionConfig, Idefics3ForConditionalGeneration, Idefics3ImageProcessorPil)

    def build_tiny(self, folder: Path) -> None:
        config_class, vision_class, model_class, image_processor_class = self.tiny_classes
        template = self.bos + CHAT_TEMPLATE
        tokenizer = make_tokenizer(SPECIAL_TOKENS, bos=self.bos, eos="<|end_of_text|>",
                                   add_bos_token=self.add_bos_token, chat_template=template)
        image, patch, scale = 64, 8, 2  # 8x8 patches, pixel-shuffled to 16 image tokens
        config = config_class(  # 64 wide, not 32: bitsandbytes' 4-bit blocks hold 64 weights
            vision_config=vision_class(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                       num_attention_heads=2, image_size=image, patch_size=patch),
            text_config=LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                                    num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                                    max_position_embeddings=256, pad_token_id=tokenizer.pad_token_id,
                                    bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id),
            image_token_id=tokenizer.convert_tokens_to_ids("<image>"), scale_factor=scale,
            pad_token_id=tokenizer.pad_token_id,
        )
        torch.manual_seed(0)
        model = model_class(config)
        # Splitting tiles each frame (then a global view) and multiplies the image tokens; real
        # models keep the setting of their own snapshot.
        image_processor = image_processor_class(
            do_image_splitting=False, size={"longest_edge": image}, max_image_size={"longest_edge": image})
        processor = Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer,
                                      image_seq_len=(image // patch) ** 2 // scale**2, chat_template=template)
        save_tiny(folder, model, processor)


class SmolVLM(Idefics3):
    """SmolVLM's own processor needs torchvision (for its video processor) and num2words even
    for images; its image path is Idefics3's, so the Idefics3 processor reads its snapshot."""

    name = "smolvlm"
    bos = "<|im_start|>"
    add_bos_token = False  # as the SmolLM2 tokenizer of the hub models
    tiny_classes = (SmolVLMConfig, SmolVLMVisionConfig, SmolVLMForConditionalGeneration, SmolVLMImageProcessorPil)

    def load_processor(self, path: str) -> Any:
        return Idefics3Processor.from_pretrained(path, local_files_only=True)

    def build_tiny(self, folder: Path) -> None:
        super().build_tiny(folder)
        # Save as the hub snapshots have it, so that real and tiny models load the same way.
        config = folder / "processor_config.json"
        config.write_text(config.read_text().replace('"Idefics3Processor"', '"SmolVLMProcessor"'))


FAMILIES = {"idefics3": Idefics3, "smolvlm": SmolVLM}
