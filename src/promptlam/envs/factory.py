"""Build Distracting MetaWorld envs from a config, or from the record a rollout file carries."""

from __future__ import annotations

from pathlib import Path

from promptlam.config import Config, validate_config
from promptlam.envs.distracting import DistractingMetaWorld
from promptlam.seeding import derive_seed


def episode_seed(seed: int, task: str, split: str, index: int) -> int:
    """Seed of episode ``index`` of ``task`` in ``split``; splits never share one.

    ``split`` is a data split (train, eval) or any other name that keeps a stream of episodes
    apart, e.g. ``online-eval`` for evaluating policies.
    """
    return derive_seed(seed, "episode", task, split, index)


def make_env(config: Config, task: str, split: str, max_steps: int | None = None) -> DistractingMetaWorld:
    """The Distracting MetaWorld env that ``config`` describes, for ``task`` and ``split``."""
    return DistractingMetaWorld(
        task, config.render, config.distractors, split, seed=config.seed,
        action_repeat=config.rollouts.action_repeat,
        max_steps=max_steps or config.rollouts.episode.max_steps,
    )


def make_eval_env(rollouts: str | Path, background: str = "eval", distractors: bool = True,
                  max_steps: int | None = None, task: str | None = None) -> DistractingMetaWorld:
    """The online env for evaluating policies trained on ``rollouts`` (a rollout file).

    Same task, render settings, action repeat and episode length as the data, with the
    background videos of split ``background`` (`train`: those of the training data; `eval`:
    never seen in training). ``distractors=False`` gives the distractor-free env of the clean
    methods.
    """
    from promptlam.data.rollout_file import RolloutFile

    with RolloutFile(rollouts) as source:
        config = validate_config(source.config, f"{source.path} (recorded config)")
        task = task or source.task
    if not distractors:
        config = config.model_copy(update={"distractors": config.distractors.model_copy(update={"enabled": False})})
    return make_env(config, task, background, max_steps)
