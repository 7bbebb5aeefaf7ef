"""What a latent action model method is: one table that config checks, CLI choices, rule wildcards,
data building and the models all read. Adding a method is one entry of ``METHODS``.

Plain data, no imports from the rest of the package (the config imports it), no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FRAME_TARGET_KINDS = ("pixels", "clean")
"""Targets that are whole frames, predicted by a pixel decoder."""

MODEL_TARGET_KINDS = ("vlm", "embedding")
"""Targets computed by a model from each frame (a VLM's representation, an image embedding)."""

VECTOR_TARGET_KINDS = (*MODEL_TARGET_KINDS, "state", "frame_vector")
"""Targets that are one vector per frame, predicted by an MLP and standardised per dimension."""

EMA_TARGET = "ema"
"""The pseudo-target of `laom`: its own EMA encoder's embedding of the next frame."""

FORMULATIONS = ("absolute", "delta", "conditioned")
"""How the forward model's target is formed from the target of frame t+1 (**[ours]**, the paper is
silent): `absolute` predicts target(t+1); `delta` predicts target(t+1) - target(t) (standardised
with the deltas' own train statistics for vectors); `conditioned` also gives the forward model
target(t) as an input (as LAOM gives its forward model the embedding of o_t) and predicts
target(t+1). Without target(t), the inverse model can store the next target itself (state
estimation) instead of the change."""

Frames = Literal["distracted", "clean"]


@dataclass(frozen=True)
class Method:
    """One latent action model variant."""

    name: str
    sees: Frames
    """Frames the inverse and forward models (and the latent policy) see."""
    head: Literal["pixels", "ema", "vector"]
    """Forward-model head: a U-Net pixel decoder, LAOM's EMA embedding, or an MLP to a vector."""
    target_kinds: tuple[str, ...]
    """Kinds of `targets` entry it can predict (`ema` for LAOM's own embedding)."""
    formulations: tuple[str, ...]
    """The `FORMULATIONS` it accepts."""
    summary: str
    """One line for help texts and docs."""
    idm: Literal["impala", "transformer"] = "impala"
    """The inverse model's encoder: IMPALA's residual CNN, or a small vision transformer over
    patches of both frame stacks (the paper's "ResNet" and "Trans")."""

    def check(self, target: str, kind: str | None, formulation: str) -> str | None:
        """Why ``target`` (of ``kind``; None if undefined) with ``formulation`` cannot be trained
        by this method, or None if it can."""
        if self.target_kinds == (EMA_TARGET,):
            if target != EMA_TARGET:
                return f"{self.name} predicts its own EMA embedding: use target '{EMA_TARGET}', not {target!r}"
        elif kind is None:
            return f"no target {target!r}"
        elif kind not in self.target_kinds:
            fitting = [m.name for m in METHODS.values() if kind in m.target_kinds]
            return (f"{self.name} predicts {' or '.join(self.target_kinds)} targets; {target!r} is a {kind} target"
                    f" (methods for it: {', '.join(fitting) or 'none'})")
        if formulation not in self.formulations:
            return (f"{self.name} takes the formulations {', '.join(self.formulations)}, "
                    f"not {formulation!r}")
        return None


METHODS: dict[str, Method] = {method.name: method for method in (
    Method("lapo", "distracted", "pixels", FRAME_TARGET_KINDS, ("absolute", "delta"),
           "LAPO: predicts the next frame's pixels (the distracted frame, or its clean twin)"),
    Method("lapo-clean", "clean", "pixels", ("clean",), ("absolute", "delta"),
           "LAPO on the clean twins, in and out: the distractor-free reference"),
    Method("laom", "distracted", "ema", (EMA_TARGET,), ("absolute",),
           "LAOM: predicts the next frame's embedding by an EMA copy of its own encoder"),
    Method("target", "distracted", "vector", VECTOR_TARGET_KINDS, FORMULATIONS,
           "predicts a vector target of the next frame (a VLM representation, an embedding, the state)"),
    Method("target-clean", "clean", "vector", VECTOR_TARGET_KINDS, FORMULATIONS,
           "`target` on the clean twins: the distractor-free reference of the vector head"),
    Method("lapo-trans", "distracted", "pixels", FRAME_TARGET_KINDS, ("absolute", "delta"),
           "`lapo` with a transformer inverse model", idm="transformer"),
    Method("target-trans", "distracted", "vector", VECTOR_TARGET_KINDS, FORMULATIONS,
           "`target` with a transformer inverse model", idm="transformer"),
)}
"""Every LAM method, by name."""

BC_ACTIONS = "bc-actions"
"""The policy that imitates the true actions (the ceiling of Figure 1); not a LAM method."""

RANDOM_ACTIONS = "random-actions"
"""Uniform random actions in the same evaluation protocol (the floor of Figure 1)."""
