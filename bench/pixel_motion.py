"""How far the gripper moves in the frame per recorded step, and how often the expert succeeds.

    python bench/pixel_motion.py [--config config.yaml] [--trajectories 8] [--repeats 1 2 4]

Collects a few trajectories per MT10 task through the real pipeline for each action repeat and
reports the gripper's displacement in pixels between consecutive recorded frames (from the
projected gripper centre stored in every rollout file) and the expert's success rate. A latent
action model can only see an action that moves something by about a pixel or more.
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import numpy as np

from promptlam.config import load_config
from promptlam.data.collect import collect
from promptlam.data.rollout_file import RolloutFile

REPO = Path(__file__).resolve().parents[1]


def motion_per_step(path: Path) -> tuple[np.ndarray, float, float]:
    with RolloutFile(path) as f:
        gripper = f["gripper_px"][()]
        steps = [np.linalg.norm(np.diff(gripper[f.rows(i)], axis=0), axis=1) for i in range(f.n_trajectories)]
        return np.concatenate(steps), float(f.trajectories["success"].mean()), float(f.trajectories["length"].mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", action="append", default=None)
    parser.add_argument("--trajectories", type=int, default=8)
    parser.add_argument("--repeats", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    base = load_config(args.config or [str(REPO / "config.yaml")])
    warnings.filterwarnings("ignore")
    print(f"resolution {base.render.resolution}, camera_pullback {base.render.camera_pullback}, "
          f"noise std {base.rollouts.action_noise.std} corr {base.rollouts.action_noise.correlation}, "
          f"{args.trajectories} trajectories per task")
    print("| action_repeat | task | mean px/step | median px/step | steps < 0.5 px | success | mean length |")
    print("|---|---|---|---|---|---|---|")
    for repeat in args.repeats:
        # Same number of environment steps per episode whatever the repeat.
        episode = base.rollouts.episode.model_copy(
            update={"max_steps": base.rollouts.episode.max_steps * base.rollouts.action_repeat // repeat})
        rollouts = base.rollouts.model_copy(update={"action_repeat": repeat, "episode": episode})
        config = base.model_copy(update={"rollouts": rollouts})
        everything = []
        with tempfile.TemporaryDirectory() as tmp:
            for task in config.tasks:
                path = Path(tmp) / f"{task}.h5"
                collect(config, task, "train", path, trajectories=args.trajectories)
                motion, success, length = motion_per_step(path)
                everything.append(motion)
                print(f"| {repeat} | {task} | {motion.mean():.2f} | {np.median(motion):.2f} | "
                      f"{(motion < 0.5).mean():.0%} | {success:.0%} | {length:.0f} |", flush=True)
        motion = np.concatenate(everything)
        print(f"| {repeat} | **all** | {motion.mean():.2f} | {np.median(motion):.2f} | {(motion < 0.5).mean():.0%} | | |",
              flush=True)


if __name__ == "__main__":
    main()
