"""Roll a decoded policy (or uniform random actions) out in the online Distracting MetaWorld env
and count successes.

The env is the one the data came from (task, render settings, action repeat; built from the
rollout file's recorded config) with the background videos of one split: `train` (seen in
training, as LAOM evaluates) or `eval` (never seen: a generalisation test); the clean methods
are evaluated without distractors. Episode i of a task is seeded by (config seed, task,
"online-eval", i) with either background, so the layouts are the same and every episode can be
replayed alone. Uniform random actions under the same protocol give the floor. Where the
background cannot change an episode (a clean policy sees no distractors; random actions look at
no frame) the episodes are played once and reported under every split. Episodes run in
parallel processes, one rendering env per process; the evaluation file is written only once all
are done (a killed evaluation leaves nothing and is simply run again).
"""

from __future__ import annotations

import os
import shutil
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
class Segment:
    """Consecutive episodes of one task with one split of background videos."""

    task: str
    background: str
    rollouts: str
    episodes: tuple[int, ...]


@dataclass(frozen=True)
class EvalJob:
    """Everything a worker process needs to run its segments (all picklable): the policy is
    loaded once, an env is built per segment. ``key`` None: uniform random actions."""

    config: Config
    key: PolicyKey | None
    budget: int | None
    tasks: tuple[str, ...]
    policy_dir: str | None
    decoder_dir: str | None
    segments: tuple[Segment, ...]
    max_steps: int | None
    video_dir: str | None
    videos: int


def _frame_stack_tensor(frames: deque) -> np.ndarray:
    # Oldest first, [S, H, W, 3]: the layout the training batches use (promptlam.lam.data).
    return np.stack(frames)


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


def _policy_actor(job: EvalJob, resolution: int) -> Callable[[str, int], Callable[[deque], np.ndarray]]:
    """(task, episode seed) -> the act function of the job's (decoded) policy for that task."""
    import torch

    config, key = job.config, job.key
    policy = load_policy(job.policy_dir, config, key, list(job.tasks), resolution)
    decoder = load_decoder(job.decoder_dir, config, key, job.budget, list(job.tasks)) if job.decoder_dir else None

    def for_task(task: str, _seed: int) -> Callable[[deque], np.ndarray]:
        task_index = torch.tensor([job.tasks.index(task)])

        def act(frames: deque) -> np.ndarray:
            with torch.no_grad():
                output = policy(torch.from_numpy(_frame_stack_tensor(frames))[None], task_index)
                return (decoder(output) if decoder is not None else output)[0].numpy()

        return act

    return for_task


def _random_actor(shape: tuple[int, ...]) -> Callable[[str, int], Callable[[deque], np.ndarray]]:
    """(task, episode seed) -> uniform random actions in [-1, 1] from a generator seeded by the
    episode."""
    def for_episode(_task: str, seed: int) -> Callable[[deque], np.ndarray]:
        generator = rng(seed, "random-actions")
        return lambda _frames: generator.uniform(-1.0, 1.0, shape).astype(np.float32)

    return for_episode


def run_episodes(job: EvalJob) -> list[dict[str, Any]]:
    """Worker: load the policy once, then run each segment's episodes in an env of its own."""
    import torch

    from promptlam.data.rollout_file import RolloutFile
    from promptlam.envs.factory import episode_seed, make_eval_env

    torch.set_num_threads(1)
    distractors = job.key is None or job.key.frames != "clean"
    actor = None
    results = []
    for segment in job.segments:
        with RolloutFile(segment.rollouts) as source:
            data_config = source.recorded_config()
        env = make_eval_env(data_config, segment.task, segment.background, distractors, job.max_steps)
        if actor is None:
            actor = (_policy_actor(job, env.render_config.resolution) if job.key is not None
                     else _random_actor(env.action_space.shape))
        try:
            for index in segment.episodes:
                seed = episode_seed(job.config.seed, segment.task, EVAL_STREAM, index)
                episode, recorded = play_episode(env, seed, actor(segment.task, seed), job.config.lam.frame_stack,
                                                 record=index < job.videos)
                if recorded is not None and job.video_dir:
                    _write_gif(Path(job.video_dir) / video_name(segment.task, segment.background, index), recorded)
                results.append({"task": segment.task, "background": segment.background, "index": index, **episode})
        finally:
            env.close()
    return results


def video_name(task: str, background: str, index: int) -> str:
    """The GIF of episode ``index`` of ``task`` with ``background`` videos, in a policy's videos/."""
    return f"{task}-{background}-episode{index}.gif"


def _write_gif(path: Path, frames: list[np.ndarray], min_size: int = 256) -> None:
    """Frames as a looping GIF, enlarged (nearest neighbour) to at least ``min_size`` pixels so
    that a 64-pixel episode can be watched."""
    import imageio.v3 as iio

    video = np.stack(frames)
    scale = max(1, -(-min_size // video.shape[1]))
    video = video.repeat(scale, axis=1).repeat(scale, axis=2)
    with atomic_output(path) as tmp:
        iio.imwrite(tmp, video, extension=".gif", duration=80, loop=0)


def balanced_segments(units: list[tuple[str, str, str]], episodes: int, workers: int) -> list[tuple[Segment, ...]]:
    """The episodes of every (task, background, rollouts) unit, cut into ``workers`` shares of
    nearly equal size, each share a run of consecutive episodes: a worker builds an env only
    where its share enters a new unit (at most units + workers - 1 envs in all)."""
    flat = [(unit, index) for unit in units for index in range(episodes)]
    shares = []
    for chunk in np.array_split(np.arange(len(flat)), min(workers, len(flat))):
        segments: list[Segment] = []
        for position in chunk:
            (task, background, rollouts), index = flat[position]
            if segments and (segments[-1].task, segments[-1].background) == (task, background):
                last = segments[-1]
                segments[-1] = Segment(task, background, rollouts, (*last.episodes, index))
            else:
                segments.append(Segment(task, background, rollouts, (index,)))
        shares.append(tuple(segments))
    return shares


def backgrounds_matter(key: PolicyKey | None) -> bool:
    """Whether the background split can change an episode: not for uniform random actions (no
    frame is looked at; the layouts are seeded alike) nor for a policy of clean frames (its env
    has no distractors)."""
    return key is not None and key.frames != "clean"


def evaluate(config: Config, key: PolicyKey | None, tasks: list[str], rollouts: list[Path],
             outs: dict[str, str | Path], policy_dir: str | Path | None = None, budget: int | None = None,
             decoder_dir: str | Path | None = None, workers: int | None = None,
             progress: bool = True) -> dict[str, dict[str, Any]]:
    """Evaluate the policy of ``key`` (decoded, for a latent policy; ``key`` None: uniform random
    actions) on every task with each background split of ``outs`` (background -> file to write);
    returns background -> result."""
    evaluation = config.evaluation
    unknown = sorted(set(outs) - {"train", "eval"})
    if unknown or not outs:
        raise ValueError(f"backgrounds must be 'train' or 'eval', got {sorted(outs)}")
    if key is not None:
        # Check the artifacts against the config here, once, before any process starts.
        load_policy(policy_dir, config, key, tasks, config.render.resolution)
        if key.lam is not None:
            if decoder_dir is None or budget is None:
                raise ValueError("a latent policy is evaluated through its decoder")
            load_decoder(decoder_dir, config, key, budget, tasks)
    # Played once when the background cannot change an episode, then reported under every split.
    played = list(outs) if backgrounds_matter(key) else list(outs)[:1]
    units = [(task, background, str(path)) for background in played for task, path in zip(tasks, rollouts)]
    workers = workers or evaluation.workers or len(os.sched_getaffinity(0))
    videos = evaluation.videos if key is not None else 0
    video_dir = str(Path(next(iter(outs.values()))).parent / "videos")
    jobs = [EvalJob(config, key, budget, tuple(tasks), str(policy_dir) if policy_dir else None,
                    str(decoder_dir) if decoder_dir else None, share, evaluation.max_steps, video_dir, videos)
            for share in balanced_segments(units, evaluation.episodes, workers)]
    name = key.path if key is not None else "random actions"
    episodes: list[dict[str, Any]] = []
    bar = progress_bar(len(units) * evaluation.episodes, f"evaluate {name} ({', '.join(outs)} backgrounds)",
                       "episode", progress)
    if len(jobs) == 1:
        episodes = run_episodes(jobs[0])
        bar.update(len(episodes))
    else:
        # spawn: MuJoCo/GL state and torch threads do not survive a fork.
        with ProcessPoolExecutor(len(jobs), mp_context=get_context("spawn")) as pool:
            for done in pool.map(run_episodes, jobs):
                episodes += done
                bar.update(len(done))
    bar.close()
    for background in list(outs)[len(played):]:
        episodes += [{**e, "background": background} for e in episodes if e["background"] == played[0]]
        for task in tasks:
            for index in range(min(videos, evaluation.episodes)):
                with atomic_output(Path(video_dir) / video_name(task, background, index)) as tmp:
                    shutil.copyfile(Path(video_dir) / video_name(task, played[0], index), tmp)
    if key is None:
        record = {"stage": "random-actions", "seed": config.seed, "tasks": tasks}
    else:
        record = decoder_record(config, key, budget, tasks) if key.lam else policy_record(config, key, tasks)
    results = {}
    for background, out in outs.items():
        by_task = {}
        for task in tasks:
            rows = sorted((e for e in episodes if e["task"] == task and e["background"] == background),
                          key=lambda e: e["index"])
            by_task[task] = {"success_rate": float(np.mean([e["success"] for e in rows])),
                             "episodes": [{k: v for k, v in e.items() if k not in ("task", "background")}
                                          for e in rows]}
        results[background] = {
            "seed": key.seed if key is not None else config.seed, "budget": budget, "background": background,
            "episodes_per_task": evaluation.episodes,
            "played_with_background": background if background in played else played[0],
            "success_rate": float(np.mean([t["success_rate"] for t in by_task.values()])), "tasks": by_task,
            "evaluation": config.section("evaluation")["evaluation"], "record": record, "provenance": provenance()}
    for background, out in outs.items():  # written only once every episode is done
        write_json(out, results[background])
    return results
