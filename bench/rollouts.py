"""Rollout collection throughput and memory, measured in one run.

    python bench/rollouts.py [--config config.yaml] [--task pick-place-v3] [--trajectories 24]

Prints, for the same env and render settings:
  - bare:     MetaWorld steps (action_repeat per frame) + the two renders a frame needs
              (colour and segmentation), nothing else: the ceiling for one process;
  - pipeline: `promptlam rollouts collect` (expert, noise, compositing, videos, HDF5 writes),
              its collection loop only (env construction excluded) and end to end;
  - their ratio, and the peak RSS of a collection job run as its own process.
Bare is measured before and after the pipeline and averaged, since this machine's speed drifts.
Results go to docs/benchmarks.md by hand, with the machine they were measured on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from promptlam.config import load_config
from promptlam.data.collect import collect
from promptlam.envs.distracting import make_metaworld_env
from promptlam.envs.rendering import SceneRenderer

REPO = Path(__file__).resolve().parents[1]


def bare_frames_per_second(config, task: str, frames: int) -> float:
    env = make_metaworld_env(task)
    env.max_path_length = 10**9
    renderer = SceneRenderer(env.model, config.render)
    actions = np.random.default_rng(0).uniform(-1, 1, (frames, 4))
    env.seed(0)
    env.reset()
    start = time.perf_counter()
    for action in actions:
        for _ in range(config.rollouts.action_repeat):
            env.step(action)
        renderer.render(env.data)
    elapsed = time.perf_counter() - start
    renderer.close()
    env.close()
    return frames / elapsed


def peak_rss_of_collection_mb(config_paths: list[str], task: str, trajectories: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "promptlam", "rollouts", "collect", "--task", task,
                   "--split", "train", "--out", str(Path(tmp) / "memory.h5"),
                   "--trajectories", str(trajectories)]
        for path in config_paths:
            command += ["--config", path]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", action="append", default=None, help="config YAML (repeatable)")
    parser.add_argument("--task", default="pick-place-v3")
    parser.add_argument("--trajectories", type=int, default=24)
    parser.add_argument("--bare-frames", type=int, default=600)
    parser.add_argument("--memory-trajectories", type=int, default=40)
    args = parser.parse_args()
    config_paths = args.config or [str(REPO / "config.yaml")]
    config = load_config(config_paths)
    warnings.filterwarnings("ignore")

    bare_before = bare_frames_per_second(config, args.task, args.bare_frames)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        stats = collect(config, args.task, "train", Path(tmp) / "bench.h5", trajectories=args.trajectories)
        end_to_end = stats.frames / (time.perf_counter() - start)
    bare_after = bare_frames_per_second(config, args.task, args.bare_frames)
    bare = (bare_before + bare_after) / 2
    peak_mb = peak_rss_of_collection_mb(config_paths, args.task, args.memory_trajectories)

    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "task": args.task,
        "resolution": config.render.resolution,
        "action_repeat": config.rollouts.action_repeat,
        "quality": config.render.quality,
        "MUJOCO_GL": os.environ.get("MUJOCO_GL"),
        "bare_frames_per_s": round(bare, 1),
        "bare_frames_per_s_before_after": [round(bare_before, 1), round(bare_after, 1)],
        "pipeline_frames_per_s": round(stats.frames_per_second, 1),
        "pipeline_end_to_end_frames_per_s": round(end_to_end, 1),
        "ratio_pipeline_to_bare": round(stats.frames_per_second / bare, 3),
        "pipeline_frames": stats.frames,
        "peak_rss_mb_collection_job": round(peak_mb, 1),
        "memory_job_trajectories": args.memory_trajectories,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
