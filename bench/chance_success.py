"""Success of policies that know nothing: the floor to read Figure 1's success rates against.

    python bench/chance_success.py --rollouts results/cpu-science/data/rollouts/train [--episodes 10] [--seed 0]

Runs the online evaluation protocol of `promptlam policy evaluate` (the env built from each
rollout file's recorded config, eval-split videos, episode i seeded as in evaluation, episodes
ending at the first success) with two action sources instead of a policy: uniform random actions
in [-1, 1] (drawn from a generator seeded by the episode seed) and zero actions (the arm holds
still). On easy tasks such as drawer-close, motion alone can succeed; a method's success on a
task means something only above these rates.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from promptlam.envs.factory import episode_seed, make_eval_env
from promptlam.policy.evaluate import EVAL_STREAM, play_episode


def success_rate(rollouts: Path, action_source: str, episodes: int, seed: int) -> float:
    env = make_eval_env(rollouts)
    shape = env.action_space.shape
    successes = 0
    try:
        for index in range(episodes):
            episode = episode_seed(seed, env.task, EVAL_STREAM, index)
            rng = np.random.default_rng(episode)
            act = ((lambda _frames: rng.uniform(-1, 1, shape).astype(np.float32)) if action_source == "random"
                   else (lambda _frames: np.zeros(shape, np.float32)))
            result, _ = play_episode(env, episode, act, stack=1)
            successes += result["success"]
    finally:
        env.close()
    return successes / episodes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollouts", type=Path, required=True, help="folder of train rollout files (one per task)")
    parser.add_argument("--episodes", type=int, default=10, help="episodes per task (the profile's evaluation.episodes)")
    parser.add_argument("--seed", type=int, default=0, help="the config seed (episode seeds derive from it)")
    args = parser.parse_args()
    files = sorted(args.rollouts.glob("*.h5"))
    if not files:
        raise SystemExit(f"--rollouts {args.rollouts}: expected rollout files (*.h5), found none")
    print("| task | random actions | zero actions |")
    print("|---|---|---|")
    for path in files:
        rates = [success_rate(path, source, args.episodes, args.seed) for source in ("random", "zero")]
        print(f"| {path.stem} | {rates[0]:.2f} | {rates[1]:.2f} |")


if __name__ == "__main__":
    main()
