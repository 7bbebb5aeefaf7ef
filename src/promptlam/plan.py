"""What a run will cost, before it starts: the work each figure needs and an estimate of its time.

`promptlam plan` counts, from the config alone (no file is read, nothing is run), what each
figure (and the whole default target) needs: target jobs and the frames they embed, LAM runs and
the samples they train on, BC policies, decoders and evaluation episodes, and the rollout frames
under all of it. Work shared by several figures is counted once in the total. The counts are
exact except frames, which are upper bounds (every episode at its step limit).

Time comes from ``UNIT_COSTS``: throughputs measured on the development machine
(docs/benchmarks.md) for the CPU stages, and assumptions, marked as such, for the GPU stages,
which have not been measured yet (no GPU was available). `measured_units` replaces the GPU ones
with what `bench/gpu.sh` measured on the user's own GPU. Every time printed is an estimate.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from promptlam.config import Config
from promptlam.errors import UserError
from promptlam.figures import comparison_points, entry_key, sweep_points, transfer_runs
from promptlam.methods import MODEL_TARGET_KINDS
from promptlam.runs import PolicyKey, RunKey, all_runs
from promptlam.vlm.cache import hub_models


# bench/targets.py reports MFU against this peak; the H200's is the same (the same chip, more memory).
H100_BF16_DENSE_FLOPS = 989e12


@dataclass(frozen=True)
class UnitCost:
    value: float
    unit: str
    basis: str
    measured: bool


UNIT_COSTS = {
    "rollout_frames_per_core_second": UnitCost(
        36.0, "frames/s per process", "bench/rollouts.py, 128 px, one process, 2026-11-25", True),
    "eval_frames_per_core_second": UnitCost(
        36.0, "env steps/s per process", "as rollout collection: the same step and render per frame", False),
    "gpu_flops_per_second": UnitCost(
        0.4 * H100_BF16_DENSE_FLOPS, "FLOP/s", "40% MFU of an H100's dense bf16 peak; not measured here", False),
    "vlm_tokens_per_frame": UnitCost(
        300.0, "tokens", "~256 image tokens and a short prompt per frame", False),
    "lam_gpu_samples_per_second": UnitCost(
        20000.0, "samples/s", "the 128 px IMPALA encoder on one GPU; not measured here (the loader alone gives "
                              "15,500-18,000 samples/s from RAM on one CPU core, bench/loader.py; with the rows on "
                              "the GPU it gathers there)", False),
    "bc_gpu_samples_per_second": UnitCost(
        20000.0, "samples/s", "as LAM training; not measured here", False),
}


def _bench_result(folder: Path, name: str, key: str) -> tuple[float, dict]:
    """``key`` of ``folder/name`` (a JSON file bench/gpu.sh wrote) and the whole result."""
    path = folder / name
    try:
        result = value = json.loads(path.read_text())
        for part in key.split("."):  # "pixel.samples_per_s": a field of a field
            value = value[part]
        return float(value), result
    except FileNotFoundError:
        raise UserError(f"{path}: not found (bench/gpu.sh writes it; run it on the GPU machine first)") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        raise UserError(f"{path}: expected bench/gpu.sh's JSON with a number under {key!r}") from None


def measured_units(folder: str | Path) -> dict[str, UnitCost]:
    """``UNIT_COSTS`` with the GPU throughputs that `bench/gpu.sh` measured into ``folder``: the
    bf16 MFU of the 7B-sized model (targets-7b-bf16.json) and the LAM rate: the smaller of the
    `lam train` loop's samples/s at config.yaml's sizes (lam-pixels-w0.json) and the loader's
    alone on a file larger than any cache (loader.json, when there: a training step cannot be
    faster than its batches). The rest stay as they are."""
    folder = Path(folder)
    mfu, target = _bench_result(folder, "targets-7b-bf16.json", "mfu_bf16_h100")
    samples, lam = _bench_result(folder, "lam-pixels-w0.json", "pipeline_samples_per_s")
    bound = f"the `lam train` loop at {lam.get('resolution')} px, batch {lam.get('batch_size')}"
    if (folder / "loader.json").exists():
        loader, _ = _bench_result(folder, "loader.json", "pixel.samples_per_s")
        bound = (f"the {'loader' if loader < samples else 'step'}-bound rate, min(loader {loader:.0f}, "
                 f"{bound} {samples:.0f})")
        samples = min(samples, loader)
    return UNIT_COSTS | {
        "gpu_flops_per_second": UnitCost(
            mfu * H100_BF16_DENSE_FLOPS, "FLOP/s",
            f"{mfu:.0%} MFU of {H100_BF16_DENSE_FLOPS / 1e12:g} TFLOP/s: a 7B-sized model in bf16 on {target.get('machine')} ({folder})", True),
        "lam_gpu_samples_per_second": UnitCost(
            samples, "samples/s", f"{bound}, on {lam.get('machine')} ({folder})", True),
    }


@dataclass
class Work:
    """Jobs a figure needs, as sets so that figures can be merged without double counting."""

    targets: set[tuple[str, str]] = field(default_factory=set)  # (target, task)
    runs: set[RunKey] = field(default_factory=set)
    policies: set[PolicyKey] = field(default_factory=set)
    decoders: set[tuple[PolicyKey, int]] = field(default_factory=set)
    evaluations: set[tuple[PolicyKey, int | None, str]] = field(default_factory=set)  # (policy, budget, background)
    random_floor: bool = False

    def __or__(self, other: Work) -> Work:
        return Work(self.targets | other.targets, self.runs | other.runs, self.policies | other.policies,
                    self.decoders | other.decoders, self.evaluations | other.evaluations,
                    self.random_floor or other.random_floor)

    def add_run(self, config: Config, run: RunKey) -> None:
        self.runs.add(run)
        if run.target_paths(config):
            self.targets.update((run.target, task) for task in config.tasks)

    def add_policy(self, config: Config, key: PolicyKey, budget: int | None, success: bool) -> None:
        if key.lam is not None:
            self.add_run(config, key.lam)
        if not success:
            return
        self.policies.add(key)
        if key.lam is not None and budget is not None:
            self.decoders.add((key, budget))
        self.evaluations.update((key, budget, background) for background in config.evaluation.backgrounds)


def figure_names(config: Config) -> list[str]:
    """Every figure and table the config defines (the default target's)."""
    names = ["fig1", "lam_probes", *config.figures.sweeps, *config.figures.comparisons]
    names += ["summary"] if config.figures.summary is not None else []
    names += ["screening_transfer"] if config.figures.screening_transfer is not None else []
    return names


def figure_work(config: Config, name: str) -> Work:
    """The jobs figure ``name`` needs (and, through them, every job before them)."""
    work = Work()
    figures = config.figures
    if name in ("fig1", "summary"):
        fig1 = figures.fig1
        for entry in fig1.entries:
            for seed in fig1.seeds:
                key = entry_key(config, entry, seed)
                work.add_policy(config, key, fig1.labelled_budget if key.lam else None, True)
        work.random_floor = fig1.random_floor
        if name == "summary":
            for comparison in (figures.summary.benchmark, figures.summary.prompts):
                if comparison is not None:
                    work = work | figure_work(config, comparison)
    elif name == "lam_probes":
        for run in all_runs(config):
            work.add_run(config, run)
    elif name in figures.sweeps:
        for point in sweep_points(config, name):
            work.add_policy(config, point.key, point.budget, True)
    elif name in figures.comparisons:
        success = "success" in figures.comparisons[name].metrics
        for point in comparison_points(config, name):
            work.add_policy(config, point.key, point.budget, success)
    elif name == "screening_transfer" and figures.screening_transfer is not None:
        for _, full, screen in transfer_runs(config):
            work.add_run(config, full)
            work.add_run(config, screen)
    else:
        raise KeyError(name)
    return work


def model_parameters(model: str) -> float | None:
    """Parameters of a hub model, read from its name (`...-7B-...`, `...-500M`), or None."""
    found = re.search(r"(?<![A-Za-z0-9.])(\d+(?:\.\d+)?)([BbMm])(?![A-Za-z])", model.split("/")[-1])
    if not found:
        return None
    return float(found.group(1)) * (1e9 if found.group(2) in "Bb" else 1e6)


def costs(config: Config, work: Work, units: dict[str, UnitCost] = UNIT_COSTS) -> dict[str, float | int | str]:
    """Counts and estimated hours of ``work`` (see the module docstring for what is exact)."""
    rollouts, lam, bc, evaluation = config.rollouts, config.lam, config.bc, config.evaluation
    frames_per_trajectory = rollouts.episode.max_steps + 1
    train_frames = rollouts.train_trajectories * frames_per_trajectory  # per task, upper bound
    rollout_frames = len(config.tasks) * (rollouts.train_trajectories + rollouts.eval_trajectories) * frames_per_trajectory
    model_jobs = [target for target, _ in work.targets if config.targets[target].kind in MODEL_TARGET_KINDS]
    # GPU time: hub models only (not tiny local ones)
    hub_model = {name: pin.model for pin in hub_models(config, model_jobs) for name in pin.targets}
    gpu_flop, unknown_models = 0.0, set()
    for model in (hub_model[target] for target in model_jobs if target in hub_model):
        parameters = model_parameters(model)
        if parameters is None:
            unknown_models.add(model)
        else:
            gpu_flop += 2 * parameters * units["vlm_tokens_per_frame"].value * train_frames
    episodes_per_job = evaluation.episodes * len(config.tasks)  # one background split
    episodes = episodes_per_job * (len(work.evaluations) + len(evaluation.backgrounds) * work.random_floor)
    eval_frames = episodes * (evaluation.max_steps or rollouts.episode.max_steps)
    lam_samples = len(work.runs) * lam.steps * lam.batch_size
    bc_samples = len(work.policies) * bc.steps * bc.batch_size
    hour = 3600.0
    return {
        "target_jobs": len(work.targets),
        "frames_to_embed": len(model_jobs) * train_frames,
        "lam_runs": len(work.runs),
        "lam_samples": lam_samples,
        "bc_policies": len(work.policies),
        "decoders": len(work.decoders),
        "evaluation_episodes": episodes,
        "rollout_frames": rollout_frames,
        "rollout_core_hours": rollout_frames / units["rollout_frames_per_core_second"].value / hour,
        "evaluation_core_hours": eval_frames / units["eval_frames_per_core_second"].value / hour,
        "target_gpu_hours": gpu_flop / units["gpu_flops_per_second"].value / hour,
        "lam_gpu_hours": lam_samples / units["lam_gpu_samples_per_second"].value / hour,
        "bc_gpu_hours": bc_samples / units["bc_gpu_samples_per_second"].value / hour,
        "models_of_unknown_size": ", ".join(sorted(unknown_models)),
    }


COUNT_COLUMNS = ["target_jobs", "frames_to_embed", "lam_runs", "lam_samples", "bc_policies", "decoders",
                 "evaluation_episodes"]
HOUR_COLUMNS = ["rollout_core_hours", "evaluation_core_hours", "target_gpu_hours", "lam_gpu_hours", "bc_gpu_hours"]


def plan_table(config: Config, names: list[str] | None = None,
               units: dict[str, UnitCost] = UNIT_COSTS) -> list[dict[str, float | int | str]]:
    """One row per figure of ``names`` (default: every figure), then their union, ``all``."""
    names = names or figure_names(config)
    works = {name: figure_work(config, name) for name in names}
    total = Work()
    for work in works.values():
        total = total | work
    return [{"figure": name, **costs(config, work, units)} for name, work in [*works.items(), ("all", total)]]


def format_plan(rows: list[dict[str, float | int | str]], units: dict[str, UnitCost] = UNIT_COSTS) -> str:
    """The table and the unit costs behind it, for a person to read before launching."""
    header = ["figure", *COUNT_COLUMNS, *HOUR_COLUMNS]
    widths = {column: max(len(column), 12) for column in header}
    widths["figure"] = max(len("figure"), *(len(str(row["figure"])) for row in rows))

    def cell(row: dict, column: str) -> str:
        value = row[column]
        text = f"{value:.1f}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int) else str(value)
        return text.rjust(widths[column]) if column != "figure" else text.ljust(widths[column])

    lines = ["  ".join(column.rjust(widths[column]) if column != "figure" else column.ljust(widths[column])
                       for column in header)]
    lines += ["  ".join(cell(row, column) for column in header) for row in rows]
    lines.append("")
    lines.append("Counts are exact (frames: upper bounds, every episode at its step limit; episodes: as scheduled,"
                 " a distractor-free policy plays one background split for all); `all` counts shared work once.")
    lines.append("Hours are ESTIMATES from these unit costs (docs/benchmarks.md):")
    for name, unit in units.items():
        lines.append(f"  {name} = {unit.value:g} {unit.unit} ({'measured' if unit.measured else 'ASSUMED'}: {unit.basis})")
    unknown = sorted({model for row in rows for model in str(row["models_of_unknown_size"]).split(", ") if model})
    if unknown:
        lines.append(f"No GPU estimate for models whose size their name does not say: {', '.join(unknown)}")
    return "\n".join(lines)
