"""Where a run's files live and what made them: the one home of the workflow's paths, run keys
and config records, read by the rules, the CLI, the stages and the figures.

Torch-free at import (Snakemake builds its DAG from this module); ``save_weights`` and
``load_checked_weights`` import safetensors when called.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from promptlam.config import Config, LamConfig
from promptlam.errors import UserError
from promptlam.methods import METHODS
from promptlam.tasks import ACTION_DIM

# ----------------------------------------------------------------------------------- data paths
ROLLOUTS = "data/rollouts/{split}/{task}.h5"
LABELLED = "data/labelled/{budget}/{task}.h5"
TARGET = "data/targets/{target}/{task}.h5"

# ------------------------------------------------------------------------------------ run paths
LAM_RUN = "runs{screen}/lam/{method}/{target}/{formulation}/ld{dim}/s{seed}"
"""A LAM run's folder (checkpoint, weights, run.json, metrics); its policy and decoders below it.
``screen`` is empty for runs on all train trajectories, `/screen{N}` for screening runs."""
BC_ACTIONS_RUN = "runs{screen}/bc-actions/s{seed}"
"""The true-action policy's folder."""
SCREEN_PATTERN = r"(/screen\d+)?"
"""What the ``{screen}`` part of a run path can be (a rule's wildcard constraint)."""


def screen_part(trajectories: int | None) -> str:
    """The ``{screen}`` part of the run paths of a run on ``trajectories`` (None: all)."""
    return "" if trajectories is None else f"/screen{trajectories}"


def screen_trajectories(screen: str) -> int | None:
    """The inverse of ``screen_part``."""
    return int(screen.removeprefix("/screen")) if screen else None
EVAL_FILE = "eval-{background}.json"
"""An evaluation's file name inside the decoder's (or the true-action policy's) folder."""
RANDOM_ACTIONS_RUN = "runs/random-actions"
"""Uniform random actions under the evaluation protocol: the floor of every success figure."""
RANDOM_EVAL = f"{RANDOM_ACTIONS_RUN}/{EVAL_FILE}"

# --------------------------------------------------------------------------------- figure paths
FIGURE_PDF = "figures/{name}.pdf"
"""A figure (`fig1`, a sweep's or a comparison's name)."""
FIGURE_CSV = "figures/{name}.csv"
"""The numbers behind figure ``name``."""
TABLE_TEX = "tables/{name}.tex"
"""A comparison's numbers as a LaTeX table."""
SUMMARY_CSV = "tables/summary.csv"
"""The measurements that bear on the paper's claims, beside them."""
SUMMARY_TXT = "tables/summary.txt"
"""The same as plain text (printed when the workflow ends)."""


def rollout_paths(config: Config, split: str = "train", root: Path = Path(".")) -> list[Path]:
    """The rollout files of ``split``, one per task of ``config``."""
    return [root / ROLLOUTS.format(split=split, task=task) for task in config.tasks]


def labelled_paths(config: Config, budget: int, root: Path = Path(".")) -> list[Path]:
    """The labelled subsets of ``budget`` trajectories, one per task."""
    return [root / LABELLED.format(budget=budget, task=task) for task in config.tasks]


@dataclass(frozen=True)
class RunKey:
    """One latent action model run."""

    method: str
    target: str
    formulation: str
    latent_dim: int
    seed: int
    trajectories: int | None = None
    """Screening: trained on this many train trajectories in all (``screening_subsets``); None: all."""

    @property
    def path(self) -> str:
        return LAM_RUN.format(screen=screen_part(self.trajectories), method=self.method, target=self.target,
                              formulation=self.formulation, dim=self.latent_dim, seed=self.seed)

    def on(self, trajectories: int | None) -> RunKey:
        """The same run trained on ``trajectories`` train trajectories (None: all)."""
        return replace(self, trajectories=trajectories)

    @property
    def spec(self):
        """The method's entry of ``promptlam.methods.METHODS``."""
        return METHODS[self.method]

    @property
    def label(self) -> str:
        """A short human name, e.g. ``target/state/delta/ld16``."""
        return f"{self.method}/{self.target}/{self.formulation}/ld{self.latent_dim}"

    def target_paths(self, config: Config, root: Path = Path(".")) -> list[Path] | None:
        """The vector target files a run reads (one per task), or None for frame and EMA heads."""
        if self.spec.head != "vector":
            return None
        return [root / TARGET.format(target=self.target, task=task) for task in config.tasks]


def all_runs(config: Config) -> list[RunKey]:
    """Every run that ``lam.runs`` describes (on the `screening` subset when one is set)."""
    return [RunKey(spec.method, spec.target, formulation, dim, seed, config.screening)
            for spec in config.lam.runs for formulation in spec.formulations
            for dim in spec.latent_dims for seed in spec.seeds]


@dataclass(frozen=True)
class PolicyKey:
    """What a policy imitates: the latents of LAM run ``lam``, or the true actions (``lam=None``)."""

    seed: int
    lam: RunKey | None = None
    trajectories: int | None = None
    """The true-action policy's screening subset (a latent policy's is its LAM's)."""

    @property
    def path(self) -> str:
        if self.lam:
            return f"{self.lam.path}/bc"
        return BC_ACTIONS_RUN.format(screen=screen_part(self.trajectories), seed=self.seed)

    @property
    def screening(self) -> int | None:
        """The train trajectories it imitates (None: all): its LAM's."""
        return self.lam.trajectories if self.lam else self.trajectories

    def decoder_path(self, budget: int) -> str:
        if self.lam is None:
            raise ValueError("the true-action policy has no decoder")
        return f"{self.lam.path}/decoder/n{budget}"

    def eval_path(self, budget: int | None, background: str) -> str:
        """Its evaluation with ``background`` videos: beside the decoder of ``budget``, or beside
        the true-action policy."""
        folder = self.decoder_path(budget) if self.lam else self.path
        return f"{folder}/{EVAL_FILE.format(background=background)}"

    @property
    def frames(self) -> str:
        """The frames the policy sees: those its LAM saw (the clean twins for the clean methods)."""
        return self.lam.spec.sees if self.lam is not None else "distracted"

    @property
    def out_dim(self) -> int:
        return self.lam.latent_dim if self.lam else ACTION_DIM


# -------------------------------------------------------------------------------------- records
def run_record(config: Config, run: RunKey, tasks: list[str]) -> dict[str, Any]:
    """What a LAM run depends on; checkpoints carry it, and a resume refuses a different one."""
    record = {"run": _without_full_data(asdict(run)), "tasks": tasks, "config": config.section("seed", "lam")}
    record["config"]["lam"] = lam_section(record["config"]["lam"])
    if run.target in config.targets:
        record["target"] = config.targets[run.target].model_dump(mode="json")
    if config.torch_threads is not None:  # the weights' last bits depend on it
        record["torch_threads"] = config.torch_threads
    return record


def lam_section(section: dict[str, Any]) -> dict[str, Any]:
    """The lam section as a run records it: without ``LamConfig.unrecorded`` (``runs`` stays,
    empty, as records have always had it)."""
    return {key: [] if key == "runs" else value for key, value in section.items()
            if key == "runs" or key not in LamConfig.unrecorded}


def _without_full_data(record: dict[str, Any]) -> dict[str, Any]:
    # runs on all the data record no `trajectories` (as before screening existed), so that their
    # artifacts stay valid
    return {key: value for key, value in record.items() if key != "trajectories" or value is not None}


def policy_record(config: Config, key: PolicyKey, tasks: list[str]) -> dict[str, Any]:
    """What a policy depends on (its weights' run.json carries it)."""
    record = {"stage": "bc", "seed": key.seed, "tasks": tasks, "frames": key.frames,
              "config": config.section("seed", "bc") | {"frame_stack": config.lam.frame_stack},
              "lam": run_record(config, key.lam, tasks) if key.lam else None}
    if config.torch_threads is not None:
        record["torch_threads"] = config.torch_threads
    return _without_full_data(record | {"trajectories": key.screening})


def decoder_record(config: Config, key: PolicyKey, budget: int, tasks: list[str]) -> dict[str, Any]:
    """What a decoder depends on."""
    return {"stage": "decoder", "budget": budget, "decoder": config.section("decoder")["decoder"],
            "policy": policy_record(config, key, tasks)}


def _first_difference(a: Any, b: Any, path: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            found = _first_difference(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))
            if found:
                return found
        return None
    return None if a == b else path or "(value)"


def check_record(source: Path, stored: dict[str, Any], expected: dict[str, Any], remedy: str) -> None:
    """Refuse an artifact made under another config, naming the first key that differs."""
    difference = _first_difference(stored, json.loads(json.dumps(expected)))
    if difference:
        raise UserError(f"{source}: made under a different config ({difference} differs); {remedy}")


# -------------------------------------------------------------------------------------- weights
def save_weights(folder: Path, name: str, module: Any, record: dict[str, Any], metrics: dict[str, Any]) -> None:
    """Write ``folder/name`` (safetensors), ``run.json`` (the record that made it, which
    ``load_checked_weights`` checks) and ``metrics.json``, each atomically."""
    from safetensors.torch import save_file

    from promptlam.io import atomic_output, write_json
    from promptlam.provenance import provenance

    with atomic_output(Path(folder) / name) as tmp:
        save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(tmp))
    write_json(Path(folder) / "run.json", {**record, "provenance": provenance()})
    write_json(Path(folder) / "metrics.json", metrics)


def load_checked_weights(folder: str | Path, name: str, expected: dict[str, Any], remedy: str) -> dict[str, Any]:
    """The weights ``folder/name``, refused with one line if unreadable or if the folder's run.json
    was made under another config than ``expected`` (the differing key named)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    try:
        stored = json.loads((folder / "run.json").read_text())
        state = load_file(str(folder / name))
    except (OSError, json.JSONDecodeError, SafetensorError) as exc:
        raise UserError(f"{folder}: no readable {name} ({type(exc).__name__}: {exc})") from None
    stored.pop("provenance", None)
    check_record(folder / "run.json", stored, expected, remedy)
    return state
