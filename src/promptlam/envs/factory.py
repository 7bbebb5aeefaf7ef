"""Build Distracting MetaWorld envs from a config: the run's, or the one a rollout file recorded."""

from __future__ import annotations

from promptlam.config import Config
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


def make_eval_env(recorded: Config, task: str, background: str = "eval", distractors: bool = True,
                  max_steps: int | None = None) -> DistractingMetaWorld:
    """The online env for evaluating policies trained on data made under ``recorded`` (a rollout
    file's recorded config: ``RolloutFile.recorded_config``).

    Same render settings, action repeat and episode length as the data, with the background
    videos of split ``background`` (`train`: those of the training data; `eval`: never seen in
    training). ``distractors=False`` gives the distractor-free env of the clean methods.
    """
    if not distractors:
        recorded = recorded.model_copy(
            update={"distractors": recorded.distractors.model_copy(update={"enabled": False})})
    return make_env(recorded, task, background, max_steps)
