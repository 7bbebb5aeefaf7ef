"""Phi-4-multimodal (transformers-native): SigLIP vision tower, audio conformer, Phi-4-mini language model.

``microsoft/Phi-4-multimodal-instruct`` loads with the native classes from a revision whose
config.json says ``"model_type": "phi4_multimodal"`` (the original revisions are remote code).
Its image processor module imports torchvision, which is not installed here (it breaks this
torch), so the processor gets a stand-in below that computes the same outputs in torch.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F
from transformers import (
    AutoTokenizer, Phi4MultimodalConfig, Phi4MultimodalFeatureExtractor, Phi4MultimodalForCausalLM,
    Phi4MultimodalProcessor,
)
from transformers.image_processing_backends import TorchvisionBackend
from transformers.image_processing_utils import BatchFeature
from transformers.image_utils import PILImageResampling
from transformers.processing_utils import ImagesKwargs
from transformers.utils import is_peft_available

from promptlam.errors import UserError
from promptlam.vlm.families import Family, save_tiny
from promptlam.vlm.families.torchvision_free import TorchvisionFree, torch_resize
from promptlam.vlm.tiny_tokenizer import make_tokenizer


class Phi4MultimodalImagesKwargs(ImagesKwargs, total=False):
    patch_size: int
    dynamic_hd: int


class Phi4MultimodalImageProcessor(TorchvisionFree, TorchvisionBackend):
    """transformers' Phi4MultimodalImageProcessor in torch: same config keys, same outputs, same saved name.

    An image is resized (aspect kept, white padding) onto a grid of at most ``dynamic_hd`` crops;
    the model reads one global view of it plus every crop.
    """

    resample = PILImageResampling.BICUBIC
    size = {"height": 448, "width": 448}
    patch_size = 14
    dynamic_hd = 36
    image_mean = [0.5, 0.5, 0.5]
    image_std = [0.5, 0.5, 0.5]
    do_rescale = True
    do_normalize = True
    do_convert_rgb = True
    valid_kwargs = Phi4MultimodalImagesKwargs
    model_input_names = ["image_pixel_values", "image_sizes", "image_attention_mask"]

    @staticmethod
    def _grid(height: int, width: int, crop: int, max_crops: int) -> tuple[int, int]:
        """Crops (across, down) to cover an image: as many as it spans, else the closest aspect ratio."""
        across, down = math.ceil(width / crop), math.ceil(height / crop)
        if across * down <= max_crops:
            return across, down
        # The same candidates in the same order as transformers, so that ties resolve alike.
        ratios = sorted({(i, j) for n in range(1, max_crops + 1) for i in range(1, n + 1) for j in range(1, n + 1)
                         if i * j <= max_crops}, key=lambda r: r[0] * r[1])
        best, best_diff = (1, 1), float("inf")
        for ratio in ratios:
            diff = abs(width / height - ratio[0] / ratio[1])
            if diff < best_diff:
                best, best_diff = ratio, diff
            elif diff == best_diff and width * height > 0.5 * crop * crop * ratio[0] * ratio[1]:
                best = ratio
        return best

    def _fit(self, image: torch.Tensor, crop: int, patch: int, max_crops: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The image resized and white-padded onto its crop grid, and the patch mask of its content."""
        height, width = image.shape[-2:]
        across, down = self._grid(height, width, crop, max_crops)
        scale_w, scale_h = crop * across / width, crop * down / height
        if scale_w < scale_h:
            new_w, new_h = crop * across, int(height * scale_w)
        else:
            new_w, new_h = int(width * scale_h), crop * down
        if min(new_w, new_h) < 10:
            raise ValueError(f"the aspect ratio is very extreme {(new_w, new_h)}")
        pad_w, pad_h = crop * across - new_w, crop * down - new_h
        mask_size = crop // patch
        mask = torch.ones(mask_size * down, mask_size * across, device=image.device)
        if pad_w >= patch:
            mask[:, -(pad_w // patch):] = 0
        if pad_h >= patch:
            mask[-(pad_h // patch):, :] = 0
        image = torch_resize(image, (new_h, new_w), PILImageResampling.BILINEAR, antialias=True)
        return F.pad(image, (0, pad_w, 0, pad_h), value=255), mask

    def _preprocess(self, images: list[torch.Tensor], size: Any, resample: Any, do_rescale: bool,
                    rescale_factor: float, do_normalize: bool, image_mean: Any, image_std: Any, patch_size: int,
                    dynamic_hd: int, return_tensors: Any, **kwargs: Any) -> BatchFeature:
        if size.height != size.width:
            raise ValueError("Phi4MultimodalImageProcessor only supports square sizes.")
        crop, mask_size = size.height, size.height // patch_size
        views, masks, tokens, sizes = [], [], [], []
        for image in images:
            image, mask = self._fit(image, crop, patch_size, dynamic_hd)
            image = self.rescale_and_normalize(image, do_rescale, rescale_factor, do_normalize, image_mean, image_std)
            height, width = image.shape[-2:]
            down, across = height // crop, width // crop
            crops = image.reshape(3, down, crop, across, crop).permute(1, 3, 0, 2, 4).reshape(-1, 3, crop, crop)
            crop_masks = mask.reshape(down, mask_size, across, mask_size).transpose(1, 2).reshape(-1, mask_size,
                                                                                                  mask_size)
            # Token count as the model lays them out after 2x2 pooling: content rows, each with a newline
            # token, one separator, and the 16x16 global view with its newlines (as transformers hardcodes it).
            pooled = crop_masks[:, 0::2, 0::2]
            half = pooled.shape[-1]
            pooled = pooled.reshape(down, across, half, half).transpose(1, 2).reshape(down * half, across * half)
            tokens.append(256 + 1 + int(pooled.sum()) + int(pooled[:, 0].sum()) + 16)
            global_view = self.resize(image, size, resample=resample, antialias=False)
            views.append(torch.cat([global_view[None], crops]))
            masks.append(torch.cat([torch.ones(1, mask_size, mask_size, device=image.device), crop_masks]))
            sizes.append([height, width])
        most = max(len(v) for v in views)
        views = [torch.cat([v, v.new_zeros(most - len(v), *v.shape[1:])]) for v in views]
        masks = [torch.cat([m, m.new_ones(most - len(m), *m.shape[1:])]) for m in masks]
        data = {"image_pixel_values": torch.stack(views), "image_sizes": torch.tensor(sizes, dtype=torch.long),
                "image_attention_mask": torch.stack(masks), "num_img_tokens": tokens}
        return BatchFeature(data=data, tensor_type=return_tensors)


CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|image|>{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}<|end|>{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


class Phi4Multimodal(Family):
    name = "phi4_multimodal"
    model_class = "AutoModelForCausalLM"
    model_types = ("phi4_multimodal",)  # the original hub revisions are remote code ("phi4mm")

    def load_processor(self, path: str) -> Any:
        # AutoProcessor would import the torchvision image processor, and it drops the chat template
        # because Phi4MultimodalProcessor.__init__ does not name it.
        config, _ = Phi4MultimodalProcessor.get_processor_dict(path, local_files_only=True)
        return Phi4MultimodalProcessor(
            Phi4MultimodalImageProcessor.from_pretrained(path, local_files_only=True),
            Phi4MultimodalFeatureExtractor.from_pretrained(path, local_files_only=True),
            AutoTokenizer.from_pretrained(path, local_files_only=True),
            chat_template=config.get("chat_template"),
        )

    def load_model(self, path: str, **kwargs: Any) -> torch.nn.Module:
        # The released model reads images through a LoRA on its language model, shipped beside it.
        lora = Path(path) / "vision-lora"
        if lora.is_dir() and not is_peft_available():
            raise UserError(f"{path} has a vision LoRA ({lora.name}/), which loads only with the `peft` package")
        model = super().load_model(path, **kwargs)
        if lora.is_dir():
            model.load_adapter(path, adapter_name="vision", local_files_only=True,
                               adapter_kwargs={"subfolder": lora.name})
            model.set_adapter("vision")
        return model

    def image_token_ids(self, processor: Any, model: torch.nn.Module) -> list[int]:
        # The id the model writes image features to; its top-level config names none.
        return [int(model.config.vision_config.image_token_id)]

    def build_tiny(self, folder: Path) -> None:
        tokenizer = make_tokenizer(
            ["<|image|>", "<|audio|>", "<|user|>", "<|assistant|>", "<|end|>"], bos="<|endoftext|>",
            eos="<|endoftext|>", pad="<|endoftext|>", chat_template=CHAT_TEMPLATE,
            extra_special_tokens={"image_token": "<|image|>", "audio_token": "<|audio|>"},
        )
        # 32x32 patches a crop, as in the real model (448 / 14): the processor's token count assumes it.
        patch, crop = 2, 64
        config = Phi4MultimodalConfig(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048,
            original_max_position_embeddings=2048, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=[tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|end|>")],
            pad_token_id=tokenizer.pad_token_id,
            vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                               image_size=crop, crop_size=crop, patch_size=patch,
                               image_token_id=tokenizer.image_token_id),
            audio_config=dict(hidden_size=16, intermediate_size=32, num_blocks=1, num_attention_heads=2,
                              ext_pw_out_channel=16, depthwise_separable_out_channel=16, nemo_conv_channels=16,
                              audio_token_id=tokenizer.audio_token_id),
        )
        torch.manual_seed(0)
        model = Phi4MultimodalForCausalLM(config)
        processor = Phi4MultimodalProcessor(
            image_processor=Phi4MultimodalImageProcessor(size={"height": crop, "width": crop}, patch_size=patch),
            audio_processor=Phi4MultimodalFeatureExtractor(), tokenizer=tokenizer, chat_template=CHAT_TEMPLATE,
        )
        save_tiny(folder, model, processor)


FAMILIES = {"phi4_multimodal": Phi4Multimodal}
