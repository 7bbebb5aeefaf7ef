"""Labelled subsets, previews, the eval env factory and the CLI's one-line errors."""

import imageio.v3 as iio
import numpy as np
import pytest

from promptlam.cli import main
from promptlam.data.labelled import LabelledSubset, write_labelled_subset
from promptlam.data.preview import write_previews
from promptlam.data.h5file import DataFileError
from promptlam.data.rollout_file import RolloutFile
from promptlam.envs.factory import make_eval_env


def test_labelled_subsets_are_nested_and_carry_their_actions(tmp_path, rollout_path, config):
    subsets = {n: write_labelled_subset(rollout_path, n, config.seed, tmp_path / f"{n}.h5") for n in (1, 2, 4)}
    assert list(subsets[2][:1]) == list(subsets[1]) and list(subsets[4][:2]) == list(subsets[2])
    assert sorted(subsets[4]) == [0, 1, 2, 3]
    with RolloutFile(rollout_path) as rollouts:
        subset = LabelledSubset(tmp_path / "2.h5", rollouts)
        rows = subset.data["rows"]
        np.testing.assert_array_equal(subset.data["action"], rollouts["action"][()][rows])
        assert len(rows) == sum(rollouts.trajectories["length"][subsets[2]])


def test_labelled_budget_larger_than_data(tmp_path, rollout_path):
    with pytest.raises(DataFileError, match="budget of 9 trajectories needs 1..4"):
        write_labelled_subset(rollout_path, 9, 0, tmp_path / "9.h5")


def test_labelled_subset_of_other_data_is_refused(tmp_path, rollout_path, config):
    from promptlam.data.collect import collect
    from conftest import tiny_config

    write_labelled_subset(rollout_path, 1, config.seed, tmp_path / "1.h5")
    other = tmp_path / "other.h5"
    collect(tiny_config(seed=9), "reach-v3", "train", other, trajectories=1, progress=False)
    with RolloutFile(other) as rollouts, pytest.raises(DataFileError, match="rebuild the labelled subsets"):
        LabelledSubset(tmp_path / "1.h5", rollouts)


def test_previews(tmp_path, rollout_path):
    write_previews(rollout_path, tmp_path / "sheet.png", tmp_path / "clip.gif")
    sheet = iio.imread(tmp_path / "sheet.png")
    assert sheet.shape[0] == 4 * 64  # two trajectories, clean and distracted rows
    clip = iio.imread(tmp_path / "clip.gif", index=None)
    assert clip.shape[0] >= 2 and clip.shape[1] == 128


def test_eval_env_uses_eval_videos_and_the_recorded_settings(rollout_path, config):
    with RolloutFile(rollout_path) as source:
        recorded, task = source.recorded_config(), source.task
    env = make_eval_env(recorded, task)
    try:
        observation, _ = env.reset(seed=0)
        assert env.split == "eval" and env.episode.video.startswith("procedural-eval-")
        assert observation["pixels"].shape == (64, 64, 3)
        assert env.action_repeat == config.rollouts.action_repeat
    finally:
        env.close()
    seen = make_eval_env(recorded, task, "train")  # the training data's background videos
    try:
        seen.reset(seed=0)
        assert seen.split == "train" and seen.episode.video.startswith("procedural-train-")
    finally:
        seen.close()
    clean_env = make_eval_env(recorded, task, distractors=False)
    try:
        observation, _ = clean_env.reset(seed=0)
        np.testing.assert_array_equal(observation["pixels"], observation["clean"])
    finally:
        clean_env.close()


@pytest.mark.parametrize("argv, fragment", [
    (["rollouts", "collect", "--task", "reach", "--split", "train", "--out", "x.h5"], "unknown task 'reach'"),
    (["rollouts", "collect", "--task", "reach-v3", "--split", "train", "--out", "x.h5",
      "--config-json", '{"render": {"resolution": 3}}'], "render.resolution: Input should be greater than or equal to 16"),
    (["rollouts", "collect", "--task", "reach-v3", "--split", "train", "--out", "x.h5",
      "--config-json", '{"distractors": {"source": "folder", "folder": "/nonexistent"}}'], "/nonexistent is not a folder"),
    (["rollouts", "inspect", "missing.h5"], "missing.h5: rollout file not found"),
    (["policy", "random", "--backgrounds", "eval", "eval"], "--backgrounds: each split at most once"),
    (["policy", "random", "--backgrounds", "train", "eval", "--out", "x.h5"], "--out: expected one file per background"),
    (["lam", "train", "--method", "lapo", "--target", "pixels", "--latent-dim", "0", "--seed", "0"],
     "--latent-dim: 0; a latent action needs at least 1 dimension"),
    (["lam", "train", "--method", "lapo", "--target", "pixels", "--latent-dim", "-4", "--seed", "0"],
     "--latent-dim: -4;"),
    (["lam", "train", "--method", "lapo", "--target", "pixels", "--latent-dim", "8", "--seed", "0", "1",
      "--out", "a"], "--out: expected one run folder per --seed (2), got 1"),
])
def test_cli_errors_are_one_line(tmp_path, monkeypatch, capsys, argv, fragment):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # nothing written, not even an empty run folder


def test_every_command_prints_its_help():
    import argparse

    from promptlam.cli import build_parser

    parser = build_parser()
    stages = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    parser.format_help()
    for stage in stages.choices.values():
        stage.format_help()
        commands = next((a for a in stage._actions if isinstance(a, argparse._SubParsersAction)), None)
        for command in commands.choices.values() if commands else []:  # `plan` has no subcommands
            assert command.format_help()
