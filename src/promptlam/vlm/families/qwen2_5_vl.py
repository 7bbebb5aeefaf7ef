"""Qwen2.5-VL: windowed ViT with 2x2 patch merging, Qwen2 language model with 3D (mrope) positions.

Also home of ``ImageOnlyProcessorFamily``, shared with the other families whose processor bundles
a video processor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from transformers import (
    AutoImageProcessor, AutoTokenizer, ProcessorMixin, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor, Qwen2VLImageProcessorPil,
)

from promptlam.vlm.families import Family, save_tiny
from promptlam.vlm.tiny_tokenizer import make_tokenizer


def image_only(processor_class: type[ProcessorMixin]) -> type[ProcessorMixin]:
    """``processor_class`` without its video processor.

    Video processors need torchvision (not installed here), and so does the processor's check of
    the video processor's class. Frames are images, which the rest of the processor handles as
    ever; the class keeps the real name, which is what saved files record.
    """

    class ImageOnly(processor_class):
        @classmethod
        def get_attributes(cls) -> list[str]:
            return [name for name in super().get_attributes() if name != "video_processor"]

    ImageOnly.__name__ = ImageOnly.__qualname__ = processor_class.__name__
    return ImageOnly


class ImageOnlyProcessorFamily(Family):
    """A family whose processor holds a video processor: it loads without one (see ``image_only``),
    its other parts and settings read from the snapshot as AutoProcessor reads them."""

    processor_class: ClassVar[type[ProcessorMixin]]

    def load_processor(self, path: str) -> Any:
        processor_class = image_only(self.processor_class)
        processor_dict, kwargs = processor_class.get_processor_dict(path, local_files_only=True)
        args = [AutoImageProcessor.from_pretrained(path, local_files_only=True),
                AutoTokenizer.from_pretrained(path, local_files_only=True)]
        return processor_class.from_args_and_dict(args, processor_dict, **kwargs)


# The real template, without its numbering of several images and its tool-calling branches.
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}{% if part['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif part['type'] == 'video' %}"
    "<|vision_start|><|video_pad|><|vision_end|>{% else %}{{ part['text'] }}{% endif %}{% endfor %}"
    "{% endif %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class Qwen2_5_VL(ImageOnlyProcessorFamily):
    name = "qwen2_5_vl"
    processor_class = Qwen2_5_VLProcessor

    def build_tiny(self, folder: Path) -> None:
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                    "<|image_pad|>", "<|video_pad|>"]
        tokenizer = make_tokenizer(specials, bos=None, eos="<|im_end|>", pad="<|endoftext|>",
                                   chat_template=CHAT_TEMPLATE)
        ids = tokenizer.convert_tokens_to_ids
        # Patch 4 and merge 2 make 8 px per image token, so a 32 px frame gives 4x4 tokens (frames over
        # 64x64 px are scaled down, as large images are by max_pixels). Windows of 2x2 tokens, with full
        # attention in the last block, run both attention kinds of the ViT.
        patch, merge = 4, 2
        config = Qwen2_5_VLConfig(
            vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, patch_size=patch,
                               spatial_merge_size=merge, temporal_patch_size=2, window_size=2 * patch * merge,
                               out_hidden_size=32, fullatt_block_indexes=[1]),
            text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                             num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                             rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]},
                             bos_token_id=None, eos_token_id=tokenizer.eos_token_id,
                             pad_token_id=tokenizer.pad_token_id),
            image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
            vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
        )
        torch.manual_seed(0)
        model = Qwen2_5_VLForConditionalGeneration(config)
        factor = patch * merge
        image_processor = Qwen2VLImageProcessorPil(
            patch_size=patch, merge_size=merge, temporal_patch_size=2,
            size={"shortest_edge": (2 * factor) ** 2, "longest_edge": (8 * factor) ** 2})
        processor = image_only(Qwen2_5_VLProcessor)(image_processor=image_processor, tokenizer=tokenizer,
                                                    chat_template=CHAT_TEMPLATE)
        save_tiny(folder, model, processor)


FAMILIES = {"qwen2_5_vl": Qwen2_5_VL}
