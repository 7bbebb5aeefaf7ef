"""Behaviour cloning of latent (or true) actions, and the few-label action decoder.

A policy lives in ``PolicyKey.path`` (``promptlam.runs``): beside its LAM run (it imitates that
LAM's IDM latent of (o_t, o_{t+1}) on every train trajectory, each transition labelled once by
the frozen IDM before training) or under ``runs/bc-actions/s{seed}/`` (it imitates the true
actions: the reference). A decoder lives in ``PolicyKey.decoder_path(budget)``: an MLP from the
policy's latent to the true action, fit on the labelled subset of each task. Each folder holds
the weights (safetensors), ``run.json`` (the config record that made them, checked by every
later stage) and ``metrics.json``.

Stages are short, so a killed job starts again from the beginning; outputs appear only whole.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from promptlam.checkpoints import CHECKPOINT_FILE, load_checkpoint, save_checkpoint
from promptlam.config import Config
from promptlam.data.labelled import LabelledSubset
from promptlam.data.rollout_file import RolloutFile
from promptlam.errors import UserError
from promptlam.io import progress_bar
from promptlam.lam.augment import augment
from promptlam.lam.data import TaskFiles, TransitionData, screening_subsets
from promptlam.lam.train import load_trained, lr_factor
from promptlam.policy.models import Policy, action_decoder
from promptlam.runs import PolicyKey, decoder_record, load_checked_weights, policy_record, save_weights
from promptlam.seeding import derive_seed, rng
from promptlam.tasks import ACTION_DIM


def _accelerator():
    from accelerate import Accelerator

    cuda = torch.cuda.is_available()
    return Accelerator(mixed_precision="bf16" if cuda else "no", cpu=not cuda)


def train_policy(config: Config, key: PolicyKey, rollouts: list[Path], out_dir: str | Path, tasks: list[str],
                 lam_dir: str | Path | None = None, progress: bool = True,
                 stop_after: int | None = None) -> dict[str, Any] | None:
    """Behaviour-clone the LAM's latents (or the true actions) from all train trajectories (a
    screening policy: from its subset, ``promptlam.lam.data.screening_subsets``). Resumes from
    the folder's checkpoint (every ``bc.checkpoint_every`` steps); ``stop_after`` ends this
    process after that many steps without finishing (as a kill would: the resume test), and
    returns None."""
    bc, out = config.bc, Path(out_dir)
    record = policy_record(config, key, tasks)
    if (key.lam is None) != (lam_dir is None):
        raise ValueError("a latent policy needs its LAM folder; the true-action policy none")
    files = [TaskFiles(Path(p)) for p in rollouts]
    subsets = screening_subsets(files, key.screening, config.lam.heldout_fraction)
    data = TransitionData(files, config.lam.frame_stack, 1, key.frames, trajectories=subsets)
    accelerator = _accelerator()
    device = accelerator.device
    # Placed first, so that labelling reads the resident rows rather than the files again.
    data.place("auto", device, config.lam.resident_memory_fraction, log=progress)
    labels, label_seconds = None, 0.0
    if key.lam is not None:
        began = time.perf_counter()
        idm = load_trained(lam_dir, config, key.lam, tasks, data.frame_size).to(device)
        labels = label_transitions(idm, data, device, progress)
        label_seconds = time.perf_counter() - began
        del idm
    torch.manual_seed(derive_seed(key.seed, "bc-init", key.path))
    policy = Policy(bc, config.lam.frame_stack, data.frame_size, len(tasks), key.out_dim)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=bc.learning_rate, weight_decay=bc.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, bc.steps, bc.warmup_fraction))
    checkpoint_path = out / CHECKPOINT_FILE
    checkpoint = load_checkpoint(checkpoint_path, record, "delete the policy folder to train it anew")
    first, rows, running = 0, [], []
    if checkpoint is not None:
        policy.load_state_dict(checkpoint["policy"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        first, rows, running = int(checkpoint["step"]), list(checkpoint["rows"]), list(checkpoint["running"])
    policy, optimizer = accelerator.prepare(policy, optimizer)
    batches = data.batches(key.seed, first, bc.steps, bc.batch_size, stream="bc-batch")
    if labels is not None:
        labels = labels.to(device)
    began = time.perf_counter()
    bar = progress_bar(bc.steps, key.path, "step", progress, initial=first)
    for step, batch in enumerate(batches, start=first):
        if stop_after is not None and step - first >= stop_after:
            bar.close()
            data.close()
            return None
        obs, task = batch["obs"], batch["task"].to(device)
        label = labels[batch["index"]] if labels is not None else batch["action"]
        if bc.augment:
            obs = augment([obs], torch.Generator().manual_seed(derive_seed(key.seed, "bc-augment", step)))[0]
        with accelerator.autocast():
            loss = F.mse_loss(policy(obs.to(device), task).float(), label.to(device))
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        optimizer.step()
        scheduler.step()
        running.append(float(loss.detach()))
        bar.update()
        if (step + 1) % bc.log_every == 0 or step + 1 == bc.steps:
            rows.append({"step": step + 1, "loss": float(np.mean(running))})
            bar.set_postfix(loss=f"{rows[-1]['loss']:.4f}", refresh=False)
            running = []
        if (step + 1) % bc.checkpoint_every == 0 or step + 1 == bc.steps:
            save_checkpoint(checkpoint_path, {
                "policy": accelerator.unwrap_model(policy).state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "step": step + 1, "rows": rows, "running": running,
            }, record)
    bar.close()
    metrics = {"steps": bc.steps, "final_loss": rows[-1]["loss"], "curve": rows,
               "train_seconds": round(time.perf_counter() - began, 2)}
    if labels is not None:
        # The loss of predicting the mean latent: what the BC loss is read against.
        metrics["label_variance"] = float(labels.var(dim=0, unbiased=False).mean())
        metrics["label_seconds"] = round(label_seconds, 2)
    data.close()
    save_weights(out, "policy.safetensors", accelerator.unwrap_model(policy), record, metrics)
    return metrics


@torch.no_grad()
def label_transitions(idm: torch.nn.Module, data: TransitionData, device: torch.device, progress: bool = True,
                      batch_size: int = 256) -> torch.Tensor:
    """The frozen IDM's latent of (o_t, o_{t+1}) for every transition of ``data`` (unaugmented
    frames), row ``data.transition_index(trajectory, t)``: computed once, so that behaviour
    cloning does not run the IDM on every batch."""
    trajectory = np.repeat(np.arange(len(data.lengths)), data.lengths - 1)
    t = np.concatenate([np.arange(n - 1) for n in data.lengths])
    latents = []
    bar = progress_bar(len(t), "label transitions", "transition", progress)
    for first in range(0, len(t), batch_size):
        chosen = slice(first, first + batch_size)
        batch = data.batch(trajectory[chosen], t[chosen], np.ones_like(t[chosen]))
        latents.append(idm.infer_latent(batch["obs"].to(device), batch["future"].to(device))[0].float().cpu())
        bar.update(len(t[chosen]))
    bar.close()
    return torch.cat(latents)


def load_policy(folder: str | Path, config: Config, key: PolicyKey, tasks: list[str], frame_size: int) -> Policy:
    """The trained policy of ``folder``, refused (naming the key) if ``config`` would not make it."""
    state = load_checked_weights(folder, "policy.safetensors", policy_record(config, key, tasks),
                                 "retrain the policy or fix the config")
    policy = Policy(config.bc, config.lam.frame_stack, frame_size, len(tasks), key.out_dim)
    policy.load_state_dict(state)
    return policy.eval()


def load_decoder(folder: str | Path, config: Config, key: PolicyKey, budget: int, tasks: list[str]) -> torch.nn.Module:
    """The trained decoder of ``folder``, refused (naming the key) if ``config`` would not make it."""
    state = load_checked_weights(folder, "decoder.safetensors", decoder_record(config, key, budget, tasks),
                                 "retrain the decoder or fix the config")
    decoder = action_decoder(config.decoder, key.out_dim, ACTION_DIM)
    decoder.load_state_dict(state)
    return decoder.eval()


@torch.no_grad()
def policy_outputs(policy: Policy, data: TransitionData, device: torch.device,
                   batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """The policy's output and the executed action for every transition of ``data``."""
    trajectory = np.repeat(np.arange(len(data.lengths)), data.lengths - 1)
    t = np.concatenate([np.arange(n - 1) for n in data.lengths])
    outputs, actions = [], []
    for first in range(0, len(t), batch_size):
        chosen = slice(first, first + batch_size)
        batch = data.batch(trajectory[chosen], t[chosen], np.ones_like(t[chosen]))
        outputs.append(policy(batch["obs"].to(device), batch["task"].to(device)).float().cpu().numpy())
        actions.append(batch["action"].numpy())
    return np.concatenate(outputs), np.concatenate(actions)


def train_decoder(config: Config, key: PolicyKey, budget: int, labelled: list[Path], rollouts: list[Path],
                  policy_dir: str | Path, out_dir: str | Path, tasks: list[str]) -> dict[str, Any]:
    """Fit the latent -> action decoder on the policy's latents of the labelled trajectories."""
    if key.lam is None:
        raise ValueError("the true-action policy needs no decoder")
    chosen = []
    for labelled_path, rollouts_path in zip(labelled, rollouts):
        with RolloutFile(rollouts_path) as source:
            subset = LabelledSubset(labelled_path, source)
        if len(subset.trajectories) != budget:
            raise UserError(f"{labelled_path}: holds {len(subset.trajectories)} trajectories, not the budget {budget}")
        chosen.append(np.sort(subset.trajectories))
    data = TransitionData([TaskFiles(Path(p)) for p in rollouts], config.lam.frame_stack, 1, key.frames, trajectories=chosen)
    policy = load_policy(policy_dir, config, key, tasks, data.frame_size)
    latents, actions = policy_outputs(policy, data, torch.device("cpu"))
    data.close()
    decoder_config = config.decoder
    torch.manual_seed(derive_seed(key.seed, "decoder-init", budget))
    decoder = action_decoder(decoder_config, key.out_dim, ACTION_DIM)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=decoder_config.learning_rate)
    generator = rng(key.seed, "decoder-batch", budget)
    x, y = torch.from_numpy(latents), torch.from_numpy(actions)
    losses = []
    for _ in range(decoder_config.updates):
        index = torch.from_numpy(generator.integers(len(x), size=min(decoder_config.batch_size, len(x))))
        loss = F.mse_loss(decoder(x[index]), y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    with torch.no_grad():
        train_mse = float(F.mse_loss(decoder(x), y))
    metrics = {"budget": budget, "transitions": len(x), "updates": decoder_config.updates,
               "train_mse": train_mse, "action_variance": float(actions.var(axis=0).mean()),
               "final_batch_loss": float(np.mean(losses[-50:]))}
    save_weights(Path(out_dir), "decoder.safetensors", decoder, decoder_record(config, key, budget, tasks), metrics)
    return metrics
