"""Frames in, one target vector per frame out: a loaded model plus the target's reading rules."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from promptlam.config import EmbeddingTarget, VLMTarget
from promptlam.errors import UserError
from promptlam.tasks import task_text
from promptlam.vlm.families import get_family
from promptlam.vlm.loading import compute_dtype, load_config, load_model, resolve_source
from promptlam.vlm.pooling import grid_pool, pool, resolve_layer


class Preprocessor:
    """Frames and text to model inputs on the CPU. Small and picklable: runs in loader workers."""

    def __init__(self, family: Any, processor: Any, image_size: int) -> None:
        self.family, self.processor, self.image_size = family, processor, image_size

    def __call__(self, frames: np.ndarray, text: str) -> dict[str, torch.Tensor]:
        size = self.image_size
        if frames.shape[1:3] != (size, size):
            # One antialiased resize for the whole batch: several times cheaper than PIL per frame.
            batch = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
            batch = F.interpolate(batch, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
            frames = batch.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        return self.family.make_inputs(self.processor, [Image.fromarray(frame) for frame in frames], text)


class FrameEncoder:
    """Encodes frames with the model of a `vlm` or `embedding` target.

    Everything that can be checked without weights (family, model files, layer range) is
    checked in the constructor before the weights load. ``preprocess(frames, text)`` (CPU, the
    processor) and ``encode(inputs)`` (the model) are separate so that a pipeline can overlap them.
    """

    def __init__(self, target: VLMTarget | EmbeddingTarget, where: str = "target",
                 device: torch.device | str = "cpu") -> None:
        self.target, self.where = target, where
        self.device = torch.device(device)
        self.family = get_family(target.family)
        self.is_vlm = self.family.kind == "vlm"
        if self.is_vlm and target.generate_tokens and not self.family.supports_generation:
            raise UserError(f"{where}.generate_tokens: {target.family} models cannot generate through the "
                            "standard generate(); use 0")
        self.source = resolve_source(target, self.family, where)
        if self.is_vlm:
            self.num_layers = self.family.num_layers(load_config(self.source, self.family))
            try:
                self.layers = [resolve_layer(spec, self.num_layers) for spec in target.layer_list]
            except ValueError as exc:
                raise type(exc)(f"{where}.layers: {exc}") from None
        self.text_patches = getattr(target, "pooling", None) == "text_patches"
        if self.text_patches:
            self.processor = self.family.load_processor(self.source.path, with_text=True)
        else:
            self.processor = self.family.load_processor(self.source.path)
        self.preprocess = Preprocessor(self.family, self.processor, target.image_size)
        self.model = load_model(self.source, self.family, target.precision, self.device, target.device_map)
        self.dtype = compute_dtype(target.precision, self.device)
        self.input_device = next(self.model.parameters()).device
        if self.is_vlm:
            self.image_token_ids = torch.tensor(self.family.image_token_ids(self.processor, self.model),
                                                device=self.input_device)

    # ------------------------------------------------------------------------------ prompting
    def prompt(self, task: str) -> str:
        """The target's prompt filled in for ``task`` (empty for embedding models that read none)."""
        template = getattr(self.target, "prompt", None)
        return template.format(**task_text(task)) if template else ""

    def model_text(self, task: str) -> str:
        """The full text the model reads for ``task``: in the family's chat format for a VLM, the
        prompt itself for an embedding model's text side."""
        return self.family.render_prompt(self.processor, self.prompt(task)) if self.is_vlm else self.prompt(task)

    # ------------------------------------------------------------------------------- encoding
    @torch.inference_mode()
    def encode(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Target vectors float32 [B, D] on the CPU."""
        inputs = {key: self._to_device(value) for key, value in inputs.items()}
        if not self.is_vlm:
            if self.target.pooling == "patch_grid":
                return grid_pool(self.family.patch_tokens(self.model, inputs).float(), self.target.grid).cpu()
            if self.text_patches:
                return self.family.text_patches(self.model, inputs).float().cpu()
            return self.family.embed(self.model, inputs).float().cpu()
        hidden_states, attention, token_ids = self._hidden_states(inputs)
        image = torch.isin(token_ids, self.image_token_ids)
        pooled = [pool(hidden_states[index].float(), attention, image, self.target.pooling) for index in self.layers]
        return torch.cat(pooled, dim=-1).cpu()

    def __call__(self, frames: np.ndarray, task: str) -> np.ndarray:
        """Convenience: preprocess and encode in one call, float32 numpy [B, D]."""
        return self.encode(self.preprocess(frames, self.model_text(task))).numpy()

    def _to_device(self, value: Any) -> Any:
        if not isinstance(value, torch.Tensor):
            return value
        if value.is_floating_point():
            return value.to(self.input_device, dtype=self.dtype)
        return value.to(self.input_device)

    def _hidden_states(self, inputs: dict[str, torch.Tensor]):
        tokens = self.target.generate_tokens
        if tokens == 0:
            out = self.model(**inputs, output_hidden_states=True)
            return out.hidden_states, inputs["attention_mask"], inputs["input_ids"]
        tokenizer = getattr(self.processor, "tokenizer", self.processor)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        out = self.model.generate(**inputs, max_new_tokens=tokens, do_sample=False, output_hidden_states=True,
                                  return_dict_in_generate=True, pad_token_id=pad)
        # Step 0 holds the prompt's states, each later step those of the token fed at that step:
        # together they cover the prompt and every generated token but the last.
        layers = range(len(out.hidden_states[0]))
        hidden = [torch.cat([step[layer] for step in out.hidden_states], dim=1) for layer in layers]
        prompt_length = inputs["input_ids"].shape[1]
        fed = out.sequences[:, : prompt_length + len(out.hidden_states) - 1]
        generated = fed[:, prompt_length:]
        attention = torch.cat([inputs["attention_mask"].bool(), generated != pad], dim=1)
        return hidden, attention, fed
