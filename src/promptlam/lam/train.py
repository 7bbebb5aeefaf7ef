"""Train one latent action model run, with checkpoints that resume exactly, then probe it.

A run is (method, target, formulation, latent dim, seed) under ``promptlam.runs.LAM_RUN``:
  checkpoint.pt  every ``lam.checkpoint_every`` steps: model, optimisers, scheduler, step, the
                 running metrics and the config that made it (loaded with weights_only=True);
  metrics.csv    a row every ``lam.log_every`` steps;
  model.safetensors + run.json   the trained weights and the config that made them;
  metrics.json   final losses and the held-out probes.
Batches are a function of (seed, step) and augmentations of (seed, step), so a run killed at any
point and started again ends with the numbers of an uninterrupted run (on a CPU).
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

import torch

from promptlam.checkpoints import CHECKPOINT_FILE, load_checkpoint, save_checkpoint
from promptlam.config import Config
from promptlam.errors import UserError
from promptlam.io import atomic_output, progress_bar
from promptlam.lam.augment import augment
from promptlam.lam.data import TaskFiles, TransitionData, screening_subsets, split_trajectories
from promptlam.lam.models import LatentActionModel
from promptlam.lam.probe import heldout_probes, transition_features
from promptlam.runs import RunKey, load_checked_weights, run_record, save_weights
from promptlam.seeding import derive_seed

FRAME_STACK_KEYS = ("obs", "future", "next_obs", "target_obs")
"""The uint8 frame stacks of a batch (augmented alike)."""


def lr_factor(step: int, total: int, warmup_fraction: float) -> float:
    warmup = int(total * warmup_fraction)
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


NEXT_FRAMES = {"pixels": lambda stack: 1, "ema": lambda stack: stack, "vector": lambda stack: 0}
"""Frames of the stack at t+1 each forward-model head reads (`next_obs`)."""


def build_data(config: Config, run: RunKey, files: list[TaskFiles], trajectories=None,
               training: bool = False) -> TransitionData:
    """The transitions of ``run``: the frames its method sees, the frames or vector targets its
    forward model predicts, in the run's formulation (``training``: drawn by ``lam.shuffle_buffer``)."""
    spec, lam = run.spec, config.lam
    target_frames = None
    if spec.head == "pixels":
        target_frames = "clean" if config.targets[run.target].kind == "clean" else "distracted"
    files = [TaskFiles(f.rollouts, f.target if spec.head == "vector" else None) for f in files]
    return TransitionData(files, lam.frame_stack, lam.max_offset, spec.sees, target_frames, trajectories,
                          run.formulation, lam.target_std_floor, NEXT_FRAMES[spec.head](lam.frame_stack),
                          lam.shuffle_buffer if training else None)


def build_model(config: Config, run: RunKey, data: TransitionData, seed_key: str) -> LatentActionModel:
    torch.manual_seed(derive_seed(run.seed, seed_key, run.method, run.target, run.latent_dim))
    target_dim = data.target_dim if run.spec.head == "vector" else None
    return LatentActionModel(config.lam, run.method, run.latent_dim, data.frame_size, target_dim, run.formulation)


def fast_kernels(model: torch.nn.Module, lam: Any) -> torch.nn.Module:
    """``lam.fast_kernels``: the model compiled (and cudnn's autotuner on); otherwise as it is.
    (The switch also fuses AdamW, where the optimiser is made.)"""
    if not lam.fast_kernels:
        return model
    torch.backends.cudnn.benchmark = True
    return torch.compile(model)


def train_run(config: Config, run: RunKey, files: list[TaskFiles], out_dir: str | Path, tasks: list[str],
              progress: bool = True, stop_after: int | None = None) -> dict[str, Any]:
    """Train (or resume) ``run`` on ``files`` into ``out_dir``; returns the final metrics.

    ``stop_after`` ends the process's training after that many steps without finishing the run
    (as a kill would, but at a known step): used by the resume test.
    """
    from accelerate import Accelerator

    lam = config.lam
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    record = run_record(config, run, tasks)
    accelerator = Accelerator(mixed_precision="bf16" if torch.cuda.is_available() else "no",
                              cpu=not torch.cuda.is_available())
    data = build_data(config, run, files, screening_subsets(files, run.trajectories, config.lam.heldout_fraction),
                      training=True)
    model = build_model(config, run, data, "lam-init")
    probe = torch.nn.Linear(run.latent_dim, 4)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=lam.learning_rate, weight_decay=lam.weight_decay,
                                  fused=True if lam.fast_kernels else None)
    probe_optimizer = torch.optim.Adam(probe.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, lam.steps, lam.warmup_fraction))
    checkpoint_path = out / CHECKPOINT_FILE
    checkpoint = load_checkpoint(checkpoint_path, record, "delete the run folder to train it anew")
    step, running = 0, {"loss": 0.0, "fdm_loss": 0.0, "probe_mse": 0.0, "count": 0}
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        probe.load_state_dict(checkpoint["probe"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        probe_optimizer.load_state_dict(checkpoint["probe_optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        step, running = int(checkpoint["step"]), dict(checkpoint["running"])
    model, probe, optimizer, probe_optimizer = accelerator.prepare(model, probe, optimizer, probe_optimizer)
    device = accelerator.device
    step_model = fast_kernels(model, lam)
    per_process = max(1, lam.batch_size // accelerator.num_processes)
    data.place(lam.data_placement, device, lam.resident_memory_fraction, log=accelerator.is_main_process)
    batches = data.batches(run.seed, step, lam.steps, per_process, accelerator.process_index)
    # The losses are summed where they are computed and read once per log row: reading each
    # step would make the host wait for the device every step.
    sums = torch.tensor([running["loss"], running["fdm_loss"], running["probe_mse"]], dtype=torch.float64,
                        device=device)
    metrics_csv = out / "metrics.csv"
    if accelerator.is_main_process:
        _truncate_metrics(metrics_csv, step)  # rows logged after the checkpoint will be logged again
    bar = progress_bar(lam.steps, run.path, "step", progress and accelerator.is_main_process, initial=step)
    began, trained = time.perf_counter(), 0
    for batch in batches:
        if stop_after is not None and trained >= stop_after:
            break
        if lam.augment:
            generator = torch.Generator().manual_seed(derive_seed(run.seed, "lam-augment", step))
            stacks = [key for key in FRAME_STACK_KEYS if key in batch]
            batch |= dict(zip(stacks, augment([batch[key] for key in stacks], generator)))
        with accelerator.autocast():
            output = step_model(batch)
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(output.loss)
        optimizer.step()
        scheduler.step()
        accelerator.unwrap_model(model).update_target_encoder()
        # LAOM's online probe: a linear map from the (detached) latent to the mean true action.
        probe_loss = torch.nn.functional.mse_loss(probe(output.latent.detach().float()), batch["action"])
        probe_optimizer.zero_grad(set_to_none=True)
        accelerator.backward(probe_loss)
        probe_optimizer.step()
        sums += torch.stack([output.loss.detach(), output.fdm_loss.detach(), probe_loss.detach()]).double()
        running["count"] += 1
        step += 1
        trained += 1
        bar.update()
        logged = step % lam.log_every == 0 or step == lam.steps
        checkpointed = step % lam.checkpoint_every == 0 or step == lam.steps
        if logged or checkpointed:
            running |= dict(zip(("loss", "fdm_loss", "probe_mse"), sums.tolist()))
        if accelerator.is_main_process and logged:
            _append_metrics(metrics_csv, step, running, scheduler.get_last_lr()[0])
            bar.set_postfix(loss=f"{running['loss'] / running['count']:.4f}", refresh=False)
        if logged:
            running = {key: 0.0 for key in running} | {"count": 0}
            sums.zero_()
        if accelerator.is_main_process and checkpointed:
            _save_checkpoint(checkpoint_path, accelerator, model, probe, optimizer, probe_optimizer, scheduler,
                             step, running, record)
    bar.close()
    seconds = time.perf_counter() - began
    if step < lam.steps:
        return {"step": step, "finished": False}
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        return {"step": step, "finished": True}
    model = accelerator.unwrap_model(model).eval()
    metrics = {"run": run.__dict__, "steps": step, "processes": accelerator.num_processes,
               "train_seconds_this_process": round(seconds, 2),
               "samples_per_second_this_process": round(trained * per_process / max(seconds, 1e-9), 1),
               "final": _final_losses(metrics_csv)}
    by_horizon = evaluate_probes(config, run, files, model, device)
    metrics["heldout_probe"] = by_horizon[lam.probe_horizons[0]]
    metrics["heldout_probe_by_horizon"] = {str(h): probes for h, probes in by_horizon.items()}
    save_weights(out, "model.safetensors", model, record, metrics)
    data.close()
    return metrics


def evaluate_probes(config: Config, run: RunKey, files: list[TaskFiles], model: LatentActionModel,
                    device: torch.device) -> dict[int, dict[str, dict[str, float]]]:
    """Held-out linear probes (``promptlam.lam.probe``) of the trained latents, the untrained
    architecture and the state, for each horizon of ``lam.probe_horizons``."""
    from promptlam.data.rollout_file import RolloutFile

    lam = config.lam
    fit_sets, held_sets = [], []
    for task_files in files:
        with RolloutFile(task_files.rollouts) as rollouts:
            fit, held = split_trajectories(rollouts.n_trajectories, lam.heldout_fraction)
        fit_sets.append(fit)
        held_sets.append(held)
    if not any(len(h) for h in held_sets):
        raise UserError("lam.heldout_fraction: every task needs at least two trajectories to hold one out")
    fit_data = build_data(config, run, files, fit_sets)
    held_data = build_data(config, run, files, held_sets)
    untrained = build_model(config, run, fit_data, "lam-untrained").to(device).eval()
    models = {"latent": model, "untrained_latent": untrained}
    results = {}
    for horizon in lam.probe_horizons:
        fit = transition_features(models, fit_data, device, horizon)
        held = transition_features(models, held_data, device, horizon)
        results[horizon] = heldout_probes(fit, held, lam.probe_ridge, tuple(models))
    fit_data.close()
    held_data.close()
    return results


def load_trained(run_dir: str | Path, config: Config, run: RunKey, tasks: list[str],
                 frame_size: int) -> LatentActionModel:
    """The trained LAM of ``run_dir``, refused (naming the key) if ``config`` would not make it."""
    state = load_checked_weights(run_dir, "model.safetensors", run_record(config, run, tasks),
                                 "retrain it or fix the config")
    target_dim = state["fdm.4.weight"].shape[0] if run.spec.head == "vector" else None
    model = LatentActionModel(config.lam, run.method, run.latent_dim, frame_size, target_dim, run.formulation)
    model.load_state_dict(state)
    return model.eval()


def _append_metrics(path: Path, step: int, running: dict[str, float], lr: float) -> None:
    new = not path.exists()
    count = max(running["count"], 1)
    with path.open("a", newline="") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(["step", "loss", "fdm_loss", "online_probe_mse", "learning_rate"])
        writer.writerow([step, f"{running['loss'] / count:.6g}", f"{running['fdm_loss'] / count:.6g}",
                         f"{running['probe_mse'] / count:.6g}", f"{lr:.6g}"])


def _truncate_metrics(path: Path, step: int) -> None:
    if not path.exists():
        return
    with path.open() as handle:
        rows = list(csv.reader(handle))
    kept = [rows[0], *(row for row in rows[1:] if int(row[0]) <= step)] if step and rows else []
    with atomic_output(path) as tmp, tmp.open("w", newline="") as handle:
        csv.writer(handle).writerows(kept)
    if not kept:
        path.unlink()


def _final_losses(path: Path) -> dict[str, float]:
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    last = rows[-1]
    return {"loss": float(last["loss"]), "fdm_loss": float(last["fdm_loss"]),
            "online_probe_mse": float(last["online_probe_mse"])}


def _save_checkpoint(path: Path, accelerator: Any, model: Any, probe: Any, optimizer: Any, probe_optimizer: Any,
                     scheduler: Any, step: int, running: dict[str, float], record: dict[str, Any]) -> None:
    save_checkpoint(path, {
        "model": accelerator.unwrap_model(model).state_dict(), "probe": accelerator.unwrap_model(probe).state_dict(),
        "optimizer": optimizer.state_dict(), "probe_optimizer": probe_optimizer.state_dict(),
        "scheduler": scheduler.state_dict(), "step": step, "running": running,
    }, record)


def heldout_summary(metrics: dict[str, Any]) -> str:
    """One line: the headline held-out probes (first horizon), relative to their variance."""
    probe = metrics["heldout_probe"]
    parts = []
    for quantity, feature in (("action_xyz", "latent"), ("action_xyz", "state"), ("residual", "latent+state"),
                              ("residual", "state"), ("residual", "action+state")):
        if quantity in probe:
            parts.append(f"{quantity} {feature} {probe[quantity][feature] / probe[quantity]['variance']:.3f}")
    return "held-out probe MSE / variance: " + ", ".join(parts)
