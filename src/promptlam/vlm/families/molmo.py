"""Molmo v1 (Molmo-7B-D/O-0924, MolmoE-1B-0924, GraspMolmo): model and processor code from the hub repository.

Not in transformers: it loads with ``trust_remote_code`` (so only at a pinned commit). Its
processor takes one example at a time, ``processor.process(images=[image], text=prompt)``, and
formats the prompt itself (the EOS token as BOS, the image tokens, then " User: {prompt} Assistant:");
the model's forward takes the returned ``input_ids``, ``images``, ``image_input_idx`` and
``image_masks`` with a batch dimension, and adds image features to the ``<im_patch>`` tokens. Its
``hidden_states`` follow the transformers convention: the embeddings (image features added), the
output of each block, the last one after the final norm.

Checked against public copies of the hub code on a tiny random model built from it in a scratch
folder (docs/targets.md says what ran); no tiny model ships here, since the project holds only its
own code. Greedy generation before reading (``generate_tokens``) does not fit this model: its
generation needs inputs only its own ``generate_from_batch`` prepares.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import transformers
from PIL import Image

from promptlam.vlm.families import Family


class Molmo(Family):
    name = "molmo"
    model_class = "AutoModelForCausalLM"
    trust_remote_code = True
    supports_generation = False

    def load_model(self, path: str, **kwargs: Any) -> torch.nn.Module:
        """The hub's ``MolmoForCausalLM`` with ``post_init`` run after its ``__init__``.

        Its ``__init__`` never calls ``post_init``, which transformers 5 relies on: ``from_pretrained``
        fails with "'MolmoForCausalLM' object has no attribute 'all_tied_weights_keys'", and its no-op
        ``tie_weights()`` takes none of the arguments transformers 5 passes (both seen on a tiny model
        built from the hub code). A subclass fixes both and loads the same weights into the same modules.
        """
        from transformers.dynamic_module_utils import get_class_from_dynamic_module

        config = transformers.AutoConfig.from_pretrained(path, local_files_only=True, trust_remote_code=True)
        remote = get_class_from_dynamic_module(config.auto_map["AutoModelForCausalLM"], path, local_files_only=True)
        return _with_post_init(remote).from_pretrained(path, local_files_only=True, **kwargs)

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
            "(e.g. allenai/Molmo-7B-D-0924), not in this project (docs/targets.md#molmo-v1)"
        )


def _with_post_init(remote: type) -> type:
    """A subclass of the hub's model class whose ``__init__`` ends with ``post_init`` (see ``Molmo.load_model``)."""

    class MolmoForCausalLM(remote):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            if not hasattr(self, "all_tied_weights_keys"):  # a later hub revision may call it itself
                self.post_init()

        def tie_weights(self, *args: Any, **kwargs: Any) -> None:
            # The hub's tie_weights() is a no-op (tying is the config's `weight_tying`, read in forward)
            # but takes no arguments, and transformers 5 passes some (`recompute_mapping=`).
            remote.tie_weights(self)

    # Named as the hub class, so that logs and the model's repr read as without the subclass.
    MolmoForCausalLM.__module__, MolmoForCausalLM.__name__ = remote.__module__, remote.__name__
    MolmoForCausalLM.__qualname__ = remote.__qualname__
    return MolmoForCausalLM


FAMILIES = {"molmo": Molmo}
