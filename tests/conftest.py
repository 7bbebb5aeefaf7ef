"""Shared fixtures: a tiny config and one small rollout file collected once per test session."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

# Nothing may reach the network at test time: make any hub access fail at once.
os.environ["HF_HUB_OFFLINE"] = "1"

import pytest

from promptlam.config import Config, validate_config

REPO = Path(__file__).resolve().parents[1]

TINY = {
    "seed": 3,
    "tasks": ["reach-v3"],
    "render": {"resolution": 64},
    "distractors": {"procedural": {"train_videos": 3, "eval_videos": 2, "length": 12}},
    "rollouts": {
        "train_trajectories": 4,
        "eval_trajectories": 1,
        "episode": {"max_steps": 12, "steps_after_success": 2},
        "labelled_budgets": [1, 2, 4],
    },
}


def tiny_config(**overrides) -> Config:
    """The tiny test config, with top-level sections replaced or extended by ``overrides``."""
    data = {**TINY}
    for key, value in overrides.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) and isinstance(data.get(key), dict) else value
    return validate_config(data, "tiny test config")


@pytest.fixture(scope="session")
def config() -> Config:
    return tiny_config()


@pytest.fixture(scope="session")
def rollout_path(tmp_path_factory, config) -> Path:
    """A train rollout file of reach-v3 (4 trajectories of up to 13 frames at 64 px)."""
    from promptlam.data.collect import collect

    path = tmp_path_factory.mktemp("rollouts") / "reach-v3.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        collect(config, "reach-v3", "train", path)
    return path
