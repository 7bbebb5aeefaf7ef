"""Molmo v1 (Molmo-7B-D/O-0924, MolmoE-1B-0924, GraspMolmo): model and processor code from the hub repository.

Not in transformers: it loads with ``trust_remote_code`` (so only at a pinned commit). Its
processor takes one example at a time, ``processor.process(images=[image], text=prompt)``, and
formats the prompt itself (a BOS, the image tokens, then " User: {prompt} Assistant:"); the
model's forward takes the returned ``input_ids``, ``images``, ``image_input_idx`` and
``image_masks`` with a batch dimension, and adds image features to the ``<im_patch>`` tokens.

Untested: no tiny model can be built without the hub code. That processor imports torchvision
and einops. Greedy generation before reading (``generate_tokens``) does not fit this model: its
generation needs inputs only its own ``generate_from_batch`` prepares, and its prefill returns
the last layer's state for the last token only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from PIL import Image

from promptlam.vlm.families import Family


class Molmo(Family):
    name = "molmo"
    model_class = "AutoModelForCausalLM"
    trust_remote_code = True
    supports_generation = False

    def render_prompt(self, processor: Any, prompt: str) -> str:
        # process() applies Molmo's chat format itself.
        return prompt

    def make_inputs(self, processor: Any, images: list[Image.Image], text: str) -> dict[str, torch.Tensor]:
        examples = [processor.process(images=[image], text=text) for image in images]
        # Frames share one size, so every example has the same crops and tokens: stacking is batching.
        inputs = {key: torch.stack([example[key] for example in examples]) for key in examples[0]}
        # The model treats -1 as padding (what it derives when given no mask); there is none here.
        inputs["attention_mask"] = (inputs["input_ids"] != -1).long()
        return inputs

    def image_token_ids(self, processor: Any, model: torch.nn.Module) -> list[int]:
        # The ids process() lays out, as it looks them up itself.
        return [int(processor.special_token_ids["<im_patch>"])]

    def build_tiny(self, folder: Path) -> None:
        raise NotImplementedError(
            "no tiny Molmo v1: its model and processor code live in the hub repository "
            "(e.g. allenai/Molmo-7B-D-0924), which cannot be fetched offline"
        )


FAMILIES = {"molmo": Molmo}
