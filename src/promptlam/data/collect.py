"""Collect Distracting MetaWorld rollouts of scripted experts with seeded, correlated action noise."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from promptlam.config import ActionNoiseConfig, Config, RolloutsConfig
from promptlam.data.rollout_file import RolloutWriter
from promptlam.envs.distracting import DistractingMetaWorld, expert_policy
from promptlam.envs.factory import episode_seed, make_env
from promptlam.errors import UserError
from promptlam.io import progress_bar
from promptlam.provenance import provenance
from promptlam.seeding import rng
from promptlam.tasks import ACTION_DIM, check_split, check_task


class CorrelatedNoise:
    """Stationary AR(1) Gaussian noise: n_t = rho * n_{t-1} + sqrt(1 - rho^2) * std * eps_t.

    Correlated noise moves the arm visibly over several steps, and no state predicts it.
    """

    def __init__(self, config: ActionNoiseConfig, generator: np.random.Generator) -> None:
        self.std, self.rho = config.std, config.correlation
        self.mask = np.ones(ACTION_DIM)
        if not config.gripper:
            self.mask[3] = 0.0
        self.generator = generator
        self.value = self.std * generator.standard_normal(ACTION_DIM) * self.mask

    def __call__(self) -> np.ndarray:
        """The noise for the current step; advances the process."""
        current = self.value
        innovation = self.generator.standard_normal(ACTION_DIM)
        self.value = self.rho * current + np.sqrt(1 - self.rho**2) * self.std * innovation * self.mask
        return current


def run_episode(env: DistractingMetaWorld, policy: Any, seed: int,
                config: RolloutsConfig) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """One noisy-expert episode: (per-frame rows, trajectory record)."""
    observation, info = env.reset(seed=seed)
    noise = CorrelatedNoise(config.action_noise, rng(seed, "action-noise"))
    columns: dict[str, list] = {name: [] for name in (
        "frames/distracted", "frames/clean", "state", "gripper_px", "video_frame", "success",
        "action", "expert_action", "action_noise", "reward")}

    def record_frame(observation: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        columns["frames/distracted"].append(observation["pixels"])
        columns["frames/clean"].append(observation["clean"])
        columns["state"].append(observation["state"])
        columns["gripper_px"].append(info["gripper_px"])
        columns["video_frame"].append(info["video_frame"])
        columns["success"].append(info["success"])

    first_success, truncated = None, False
    after_success = config.episode.steps_after_success
    step = 0
    while True:
        record_frame(observation, info)
        if first_success is None and info["success"]:
            first_success = step
        done_after_success = after_success is not None and first_success is not None and step - first_success >= after_success
        if done_after_success or truncated:
            break
        expert = np.asarray(policy.get_action(observation["state"]), dtype=np.float64)
        perturbation = noise()
        # The noise perturbs the action the expert would execute (its own output clipped to the
        # action bounds): on an unclipped expert, saturated by large gains, it would mostly vanish.
        action = np.clip(np.clip(expert, -1.0, 1.0) + perturbation, -1.0, 1.0)
        observation, reward, _, truncated, info = env.step(action)
        columns["action"].append(action)
        columns["expert_action"].append(expert)
        columns["action_noise"].append(perturbation)
        columns["reward"].append(reward)
        step += 1
    # The last frame takes no action: zero rows keep every field aligned with the frames.
    for name in ("action", "expert_action", "action_noise"):
        columns[name].append(np.zeros(ACTION_DIM))
    columns["reward"].append(0.0)
    rows = {name: np.asarray(values) for name, values in columns.items()}
    episode = env.episode
    record = {
        "seed": seed,
        "success": bool(rows["success"].any()),
        "layout": episode.layout,
        "video": episode.video,
        "video_start": episode.video_start,
    }
    return rows, record


@dataclass
class CollectionStats:
    trajectories: int
    frames: int
    successes: int
    seconds: float
    """Wall time of the collection loop (env construction excluded)."""

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds else float("nan")


def trajectories_for(config: Config, split: str) -> int:
    counts = {"train": config.rollouts.train_trajectories, "eval": config.rollouts.eval_trajectories}
    return counts[check_split(split)]


def collect(config: Config, task: str, split: str, out: str | Path, trajectories: int | None = None,
            progress: bool = True) -> CollectionStats:
    """Collect ``trajectories`` (default: the config's count for ``split``) into ``out``."""
    check_task(task)
    count = trajectories_for(config, split) if trajectories is None else trajectories
    if count < 1:
        raise UserError(f"rollouts.{split}_trajectories: need at least one trajectory, got {count}")
    env = make_env(config, task, split)
    policy = expert_policy(task)
    stats = CollectionStats(0, 0, 0, 0.0)
    bar = progress_bar(count, f"{task} {split}", "traj", progress)
    try:
        writer = RolloutWriter(
            out, task=task, split=split, resolution=config.render.resolution,
            config=config.rollout_section(), provenance=provenance(),
            storage=config.rollouts.storage,
        )
        with writer:
            start = time.perf_counter()
            for index in range(count):
                rows, record = run_episode(env, policy, episode_seed(config.seed, task, split, index),
                                           config.rollouts)
                writer.append(rows, record)
                stats.trajectories += 1
                stats.frames += len(rows["state"])
                stats.successes += record["success"]
                stats.seconds = time.perf_counter() - start
                bar.update()
                bar.set_postfix(frames_per_s=f"{stats.frames_per_second:.0f}",
                                success=f"{stats.successes}/{stats.trajectories}", refresh=False)
    finally:
        bar.close()
        env.close()
    return stats
