"""Roll a decoded policy (or uniform random actions) out in the online Distracting MetaWorld env
and count successes.

The env is the one the data came from (task, render settings, action repeat; built from the
rollout file's recorded config) with the background videos of one split: `train` (seen in
training, as LAOM evaluates) or `eval` (never seen: a generalisation test); the clean methods
are evaluated without distractors. Episode i of a task is seeded by (config seed, task,
"online-eval", i) with either background, so the layouts are the same and every episode can be
replayed alone. Uniform random actions under the same protocol give the floor. Episodes run in
parallel processes, one rendering env per process; the evaluation file is written only once all
are done (a killed evaluation leaves nothing and is simply run again).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from promptlam.config import Config
from promptlam.io import atomic_output, progress_bar, write_json
from promptlam.policy.train import load_decoder, load_policy
from promptlam.provenance import provenance
from promptlam.runs import PolicyKey, decoder_record, policy_record
from promptlam.seeding import rng

EVAL_STREAM = "online-eval"
"""The episode-seed stream of online evaluation (kept apart from the data's train/eval streams)."""


@dataclass(frozen=True)
class EvalJob:
    """Everything a worker process needs to run some episodes of one task (all picklable).
    ``key`` None: uniform random actions."""

    config: Config
    key: PolicyKey | None
    budget: int | None
    tasks: tuple[str, ...]
    task: str
    background: str
    rollouts: str
    policy_dir: str | None
    decoder_dir: str | None
    episodes: tuple[int, ...]
    max_steps: int | None
    video_dir: str | None
    videos: int


def _frame_stack_tensor(frames: deque) -> np.ndarray:
    # Oldest first, channels of each frame together: the layout the training batches use.
    return np.concatenate([frame.transpose(2, 0, 1) for frame in frames])


def play_episode(env: Any, seed: int, act: Callable[[deque], np.ndarray], stack: int,
                 record: bool = False) -> tuple[dict[str, Any], list[np.ndarray] | None]:
    """One online episode from ``seed``, ending at the first success or when the env truncates.

    ``act`` maps the last ``stack`` frames (a deque, oldest first) to an action. Returns the
    episode's seed, success, steps and return, and its frames when ``record``.
    """
    observation, _ = env.reset(seed=seed)
    frames = deque([observation["pixels"]] * stack, maxlen=stack)
    recorded = [observation["pixels"]] if record else None
    steps, total_reward = 0, 0.0
    while True:
        observation, reward, _, truncated, info = env.step(act(frames))
        steps += 1
        total_reward += reward
        frames.append(observation["pixels"])
        if recorded is not None:
            recorded.append(observation["pixels"])
        if info["success"] or truncated:
            break
    return {"seed": seed, "success": bool(info["success"]), "steps": steps, "return": round(total_reward, 4)}, recorded


def _policy_actor(job: EvalJob, resolution: int) -> Callable[[int], Callable[[deque], np.ndarray]]:
    """Episode seed -> the act function of the job's (decoded) policy: the same for every episode."""
    import torch

    config, key = job.config, job.key
    policy = load_policy(job.policy_dir, config, key, list(job.tasks), resolution)
    decoder = load_decoder(job.decoder_dir, config, key, job.budget, list(job.tasks)) if job.decoder_dir else None
    task_index = torch.tensor([job.tasks.index(job.task)])

    def act(frames: deque) -> np.ndarray:
        with torch.no_grad():
            output = policy(torch.from_numpy(_frame_stack_tensor(frames))[None], task_index)
            return (decoder(output) if decoder is not None else output)[0].numpy()

    return lambda _seed: act


def _random_actor(shape: tuple[int, ...]) -> Callable[[int], Callable[[deque], np.ndarray]]:
    """Episode seed -> uniform random actions in [-1, 1] from a generator seeded by the episode."""
    def for_episode(seed: int) -> Callable[[deque], np.ndarray]:
        generator = rng(seed, "random-actions")
        return lambda _frames: generator.uniform(-1.0, 1.0, shape).astype(np.float32)

    return for_episode


def run_episodes(job: EvalJob) -> list[dict[str, Any]]:
    """Worker: build the env and the policy once, then run the job's episodes."""
    import torch

    from promptlam.envs.factory import episode_seed, make_eval_env

    torch.set_num_threads(1)
    distractors = job.key is None or job.key.frames != "clean"
    env = make_eval_env(job.rollouts, job.background, distractors=distractors, max_steps=job.max_steps,
                        task=job.task)
    actor = (_policy_actor(job, env.render_config.resolution) if job.key is not None
             else _random_actor(env.action_space.shape))
    results = []
    try:
        for index in job.episodes:
            seed = episode_seed(job.config.seed, job.task, EVAL_STREAM, index)
            episode, recorded = play_episode(env, seed, actor(seed), job.config.lam.frame_stack,
                                             record=index < job.videos)
            if recorded is not None and job.video_dir:
                _write_gif(Path(job.video_dir) / f"{job.task}-{job.background}-episode{index}.gif", recorded)
            results.append({"task": job.task, "index": index, **episode})
    finally:
        env.close()
    return results


def _write_gif(path: Path, frames: list[np.ndarray], min_size: int = 256) -> None:
    """Frames as a looping GIF, enlarged (nearest neighbour) to at least ``min_size`` pixels so
    that a 64-pixel episode can be watched."""
    import imageio.v3 as iio

    video = np.stack(frames)
    scale = max(1, -(-min_size // video.shape[1]))
    video = video.repeat(scale, axis=1).repeat(scale, axis=2)
    with atomic_output(path) as tmp:
        iio.imwrite(tmp, video, extension=".gif", duration=80, loop=0)


def _split(indices: list[int], parts: int) -> list[tuple[int, ...]]:
    return [tuple(int(i) for i in chunk) for chunk in np.array_split(np.asarray(indices), parts) if len(chunk)]


def evaluate(config: Config, key: PolicyKey | None, tasks: list[str], rollouts: list[Path], out: str | Path,
             background: str = "eval", policy_dir: str | Path | None = None, budget: int | None = None,
             decoder_dir: str | Path | None = None, workers: int | None = None,
             progress: bool = True) -> dict[str, Any]:
    """Evaluate the policy of ``key`` (decoded, for a latent policy; ``key`` None: uniform random
    actions) on every task with ``background`` videos; writes ``out``."""
    evaluation = config.evaluation
    out = Path(out)
    if background not in ("train", "eval"):
        raise ValueError(f"background must be 'train' or 'eval', got {background!r}")
    if key is not None:
        # Check the artifacts against the config here, once, before any process starts.
        load_policy(policy_dir, config, key, tasks, config.render.resolution)
        if key.lam is not None:
            if decoder_dir is None or budget is None:
                raise ValueError("a latent policy is evaluated through its decoder")
            load_decoder(decoder_dir, config, key, budget, tasks)
    workers = workers or evaluation.workers or len(os.sched_getaffinity(0))
    workers = max(1, min(workers, len(tasks) * evaluation.episodes))
    per_task = max(1, workers // len(tasks)) if workers >= len(tasks) else 1
    videos = evaluation.videos if key is not None else 0
    jobs = [
        EvalJob(config, key, budget, tuple(tasks), task, background, str(path), str(policy_dir) if policy_dir else None,
                str(decoder_dir) if decoder_dir else None, chunk, evaluation.max_steps, str(out.parent / "videos"),
                videos)
        for task, path in zip(tasks, rollouts)
        for chunk in _split(list(range(evaluation.episodes)), per_task)
    ]
    name = key.path if key is not None else "random actions"
    episodes: list[dict[str, Any]] = []
    bar = progress_bar(len(tasks) * evaluation.episodes, f"evaluate {name} ({background} backgrounds)", "episode",
                       progress)
    if workers == 1:
        for job in jobs:
            episodes += run_episodes(job)
            bar.update(len(job.episodes))
    else:
        # spawn: MuJoCo/GL state and torch threads do not survive a fork.
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            for done in pool.map(run_episodes, jobs):
                episodes += done
                bar.update(len(done))
    bar.close()
    by_task = {}
    for task in tasks:
        rows = sorted((e for e in episodes if e["task"] == task), key=lambda e: e["index"])
        by_task[task] = {"success_rate": float(np.mean([e["success"] for e in rows])),
                         "episodes": [{k: v for k, v in e.items() if k != "task"} for e in rows]}
    if key is None:
        record = {"stage": "random-actions", "seed": config.seed, "tasks": tasks}
    else:
        record = decoder_record(config, key, budget, tasks) if key.lam else policy_record(config, key, tasks)
    result = {"seed": key.seed if key is not None else config.seed, "budget": budget, "background": background,
              "episodes_per_task": evaluation.episodes,
              "success_rate": float(np.mean([t["success_rate"] for t in by_task.values()])), "tasks": by_task,
              "evaluation": config.section("evaluation")["evaluation"], "record": record, "provenance": provenance()}
    write_json(out, result)
    return result
