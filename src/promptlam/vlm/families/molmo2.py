"""Molmo2 (transformers-native): SigLIP-style ViT, attention-pooling adapter, Qwen3-style language model.

Its processor is used as transformers ships it, with two stand-ins because torchvision is not
installed here (it breaks this torch): the image processor's torchvision calls are replaced by
the torch calls torchvision makes for them (``TorchvisionFree``), and the video processor, which
only checks out with torchvision and which frames never use, is left out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import AutoTokenizer, Molmo2Config, Molmo2ForConditionalGeneration
from transformers.models.molmo2.image_processing_molmo2 import Molmo2ImageProcessor as _Molmo2ImageProcessor
from transformers.models.molmo2.video_processing_molmo2 import Molmo2VideoProcessor

from promptlam.vlm.families import Family, save_tiny
from promptlam.vlm.families.torchvision_free import TorchvisionFree
from promptlam.vlm.tiny_tokenizer import make_tokenizer

class Molmo2ImageProcessor(TorchvisionFree, _Molmo2ImageProcessor):
    """transformers' Molmo2ImageProcessor without torchvision (and saved under its name)."""


class Molmo2Processor(transformers.Molmo2Processor):
    """transformers' Molmo2Processor, which may go without a video processor (saved under its name)."""

    def check_argument_for_proper_class(self, argument_name: str, argument: Any) -> type:
        # Without torchvision the check itself fails for the video processor.
        if argument_name == "video_processor":
            return type(argument)
        return super().check_argument_for_proper_class(argument_name, argument)


CHAT_TEMPLATE = (  # renders a one-turn chat as the hub template does: images first, then the turns
    "{% for message in messages %}{% for part in message['content'] %}{% if part['type'] == 'image' %}"
    "<|image|>{% endif %}{% endfor %}{% endfor %}"
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
MEDIA_TOKENS = ["<im_start>", "<im_end>", "<im_patch>", "<im_col>", "<low_res_im_start>", "<|image|>", "<im_low>",
                "<frame_start>", "<frame_end>", "<|video|>"]


class Molmo2(Family):
    name = "molmo2"

    def load_processor(self, path: str) -> Any:
        # AutoProcessor would build the torchvision-only sub-processors.
        config, _ = Molmo2Processor.get_processor_dict(path, local_files_only=True)
        image_processor = Molmo2ImageProcessor.from_pretrained(path, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        return Molmo2Processor.from_args_and_dict([image_processor, None, tokenizer], config)

    def build_tiny(self, folder: Path) -> None:
        tokenizer = make_tokenizer(["<|im_start|>", *MEDIA_TOKENS], bos="<|im_end|>", eos="<|im_end|>",
                                   pad="<|endoftext|>", chat_template=CHAT_TEMPLATE,
                                   extra_special_tokens={"image_token": "<|image|>", "video_token": "<|video|>"})
        ids = dict(zip(MEDIA_TOKENS, tokenizer.convert_tokens_to_ids(MEDIA_TOKENS)))
        patch, crop = 4, 24  # 6x6 patches a crop, pooled 2x2 into 3x3 tokens
        # At the default init (0.02) the image path adds almost nothing to the embeddings of so small a model.
        init = 0.2
        config = Molmo2Config(
            vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                               num_key_value_heads=2, head_dim=16, image_size=[crop, crop], patch_size=patch,
                               initializer_range=init),
            adapter_config=dict(vision_feature_layer=[-1, -2], hidden_size=32, num_attention_heads=2,
                                num_key_value_heads=2, head_dim=16, intermediate_size=64, text_hidden_size=32,
                                initializer_range=init),
            text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                             num_key_value_heads=2, head_dim=16, vocab_size=len(tokenizer), additional_vocab_size=0,
                             max_position_embeddings=512),
            image_start_token_id=ids["<im_start>"], low_res_image_start_token_id=ids["<low_res_im_start>"],
            image_end_token_id=ids["<im_end>"], image_patch_id=ids["<im_patch>"],
            frame_start_token_id=ids["<frame_start>"], frame_end_token_id=ids["<frame_end>"],
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        torch.manual_seed(0)
        model = Molmo2ForConditionalGeneration(config)
        processor = Molmo2Processor(
            image_processor=Molmo2ImageProcessor(size={"height": crop, "width": crop}, patch_size=patch, max_crops=2,
                                                 overlap_margins=[1, 1], image_mean=[0.5] * 3, image_std=[0.5] * 3),
            video_processor=Molmo2VideoProcessor(), tokenizer=tokenizer, chat_template=CHAT_TEMPLATE,
            use_single_crop_col_tokens=False,
        )
        save_tiny(folder, model, processor)


FAMILIES = {"molmo2": Molmo2}
