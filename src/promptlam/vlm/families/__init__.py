"""Model families: what differs between VLMs, behind one small interface.

A family knows its model class, how a frame and a prompt become model inputs (chat format,
image placeholders), which input tokens are image tokens, how many layers the language model
has, and how to build a tiny random model of itself for tests. Everything else (loading,
precision, batching, pooling, files) is shared. Add a family by subclassing ``Family`` in a
module of this package and registering it in ``FAMILY_MODULES``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import transformers
from PIL import Image

from promptlam.errors import UserError

if TYPE_CHECKING:
    from promptlam.config import HubModel

FAMILY_MODULES = {
    "llava": "llava",
    "llava_onevision": "llava_onevision",
    "idefics3": "idefics3",
    "smolvlm": "idefics3",
    "paligemma": "paligemma",
    "gemma3": "gemma3",
    "qwen2_5_vl": "qwen2_5_vl",
    "internvl": "internvl",
    "phi4_multimodal": "phi4_multimodal",
    "molmo": "molmo",
    "molmo2": "molmo2",
    "clip": "embedding",
    "siglip": "embedding",
    "dinov2": "embedding",
    "efficientnet_lite0": "efficientnet",
}
"""Family name -> module in this package that defines it (a module may define several)."""


class Family:
    """A promptable VLM family. Defaults follow the common transformers image-text-to-text API."""

    name: ClassVar[str]
    kind: ClassVar[str] = "vlm"
    model_class: ClassVar[str] = "AutoModelForImageTextToText"
    trust_remote_code: ClassVar[bool] = False
    """Whether the family's models need code from their hub repository (then only at a pinned commit)."""
    supports_generation: ClassVar[bool] = True
    """Whether tokens can be generated (``generate_tokens``) through the standard ``generate``."""
    model_types: ClassVar[tuple[str, ...]] = ()
    """The ``model_type`` values of config.json that the family loads, where a hub repository has
    revisions in another format (empty: not checked)."""

    # ------------------------------------------------------------------------------- loading
    def packaged_weights(self, target: HubModel, where: str) -> tuple[str, str] | None:
        """For a family whose weights ship inside an installed package instead of the hub: their path
        and what pins them (recorded as the commit), after checking the target's fields (one-line
        errors naming ``where``). None, the default: a hub id or a local folder."""
        return None

    def load_processor(self, path: str) -> Any:
        return transformers.AutoProcessor.from_pretrained(
            path, local_files_only=True, trust_remote_code=self.trust_remote_code)

    def load_model(self, path: str, **kwargs: Any) -> torch.nn.Module:
        model_class = getattr(transformers, self.model_class)
        return model_class.from_pretrained(
            path, local_files_only=True, trust_remote_code=self.trust_remote_code, **kwargs)

    def num_layers(self, config: Any) -> int:
        """Layers of the language model whose hidden states are read."""
        return config.get_text_config().num_hidden_layers

    # -------------------------------------------------------------------------------- inputs
    def render_prompt(self, processor: Any, prompt: str) -> str:
        """The full text fed to the model: the family's chat format with one image and ``prompt``."""
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
        return processor.apply_chat_template(messages, add_generation_prompt=True)

    def make_inputs(self, processor: Any, images: list[Image.Image], text: str) -> dict[str, torch.Tensor]:
        """Model inputs for a batch of frames sharing one rendered prompt, one image per sample.

        A chat template that writes the bos token itself would get a second one from tokenizers
        that add it (Llama 3, Gemma); like ``apply_chat_template(tokenize=True)``, don't add it then.
        """
        kwargs = {}
        bos = getattr(getattr(processor, "tokenizer", None), "bos_token", None)
        if bos and text.startswith(bos):
            kwargs["add_special_tokens"] = False
        return dict(processor(images=[[image] for image in images], text=[text] * len(images),
                              return_tensors="pt", padding=True, **kwargs))

    def image_token_ids(self, processor: Any, model: torch.nn.Module) -> list[int]:
        """Token ids that stand for image content in ``input_ids`` (for image/text pooling)."""
        config = model.config
        token = getattr(config, "image_token_id", None)
        if token is None:
            token = getattr(config, "image_token_index", None)
        if token is None:
            token = processor.image_token_id
        return [int(token)]

    # ----------------------------------------------------------------------------------- tiny
    def build_tiny(self, folder: Path) -> None:
        """Save a tiny randomly initialised model and its processor to ``folder``."""
        raise NotImplementedError(f"no tiny model for family {self.name!r}")


class EmbeddingFamily(Family):
    """An image-embedding model: one vector per image (the pooled embedding, or its patch features
    pooled on a grid or weighted by a text), no chat prompt."""

    kind: ClassVar[str] = "embedding"
    model_class: ClassVar[str] = "AutoModel"

    def load_processor(self, path: str, with_text: bool = False) -> Any:
        """The image processor; with ``with_text`` the processor that also tokenizes text."""
        loader = transformers.AutoProcessor if with_text else transformers.AutoImageProcessor
        return loader.from_pretrained(path, local_files_only=True)

    def make_inputs(self, processor: Any, images: list[Image.Image], text: str = "") -> dict[str, torch.Tensor]:
        """Pixel values of the batch and, given a ``text``, its tokens once (shared by every image)."""
        if text:
            return dict(processor(images=images, text=[text], return_tensors="pt", padding=True))
        return dict(processor(images=images, return_tensors="pt"))

    def embed(self, model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The pooled image embedding [B, D]."""
        raise NotImplementedError

    def patch_tokens(self, model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The last layer's patch features [B, N, D], N a square number of patches in raster order."""
        raise NotImplementedError(f"{self.name} has no patch features")

    def text_patches(self, model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Patch features averaged with weights from their similarity to the text [B, D]."""
        raise NotImplementedError(f"{self.name} has no joint text-image space")


def get_family(name: str) -> Family:
    """The family called ``name``; a one-line error for an unknown one."""
    if name not in FAMILY_MODULES:
        raise UserError(f"unknown model family {name!r}: expected one of {', '.join(FAMILY_MODULES)}")
    module = importlib.import_module(f"promptlam.vlm.families.{FAMILY_MODULES[name]}")
    return module.FAMILIES[name]()


def save_tiny(folder: Path, model: torch.nn.Module, processor: Any) -> None:
    """Save a tiny model and its processor side by side, as a hub snapshot would have them."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
