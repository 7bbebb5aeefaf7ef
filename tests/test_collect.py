"""Collection: what a trajectory records, noise statistics, determinism."""

import numpy as np

from promptlam.config import ActionNoiseConfig
from promptlam.data.collect import CorrelatedNoise, collect
from promptlam.data.rollout_file import RolloutFile, row_fields
from promptlam.envs.factory import episode_seed

from conftest import tiny_config


def test_rows_are_aligned_and_actions_recorded(rollout_path, config):
    with RolloutFile(rollout_path) as f:
        assert f.task == "reach-v3" and f.split == "train" and f.n_trajectories == 4
        assert f.config == config.rollout_section()
        lengths = f.trajectories["length"]
        assert (lengths >= 2).all() and (lengths <= config.rollouts.episode.max_steps + 1).all()
        for index in range(f.n_trajectories):
            t = f.trajectory(index)
            np.testing.assert_array_equal(t["action"][-1], 0)  # the last frame takes no action
            # The noise perturbs the clipped expert action (data/collect.py).
            expected = np.clip(np.clip(t["expert_action"][:-1], -1, 1) + t["action_noise"][:-1], -1, 1)
            np.testing.assert_allclose(t["action"][:-1], expected, atol=1e-6)
            assert (t["action_noise"][:-1, 3] == 0).all()  # gripper noise is off by default
            assert bool(t["success"].any()) == bool(f.trajectories["success"][index])
            assert t["video_frame"].min() >= 0
            assert f.trajectories["seed"][index] == episode_seed(config.seed, "reach-v3", "train", index)
        for name, field in row_fields(64).items():
            assert f[name].shape == (f.n_frames, *field.shape)


def test_episode_ends_after_success():
    # steps_after_success=2: a successful episode stops 2 recorded steps after its first success.
    config = tiny_config(rollouts={"episode": {"max_steps": 60, "steps_after_success": 2}})
    from promptlam.data.collect import run_episode
    from promptlam.envs.distracting import expert_policy
    from promptlam.envs.factory import make_env

    env = make_env(config, "reach-v3", "train")
    try:
        rows, record = run_episode(env, expert_policy("reach-v3"), 12, config.rollouts)
    finally:
        env.close()
    assert record["success"], "episode seed 12 of reach-v3 succeeds with the pinned MetaWorld"
    first = int(np.argmax(rows["success"]))
    assert len(rows["success"]) == first + 3


def test_same_config_and_seed_give_byte_identical_arrays(tmp_path, rollout_path, config):
    again = tmp_path / "again.h5"
    collect(config, "reach-v3", "train", again, trajectories=2, progress=False)
    with RolloutFile(rollout_path) as a, RolloutFile(again) as b:
        rows = slice(0, b.n_frames)
        for name in row_fields(64):
            assert a[name][rows].tobytes() == b[name][()].tobytes(), name
        assert a.dataset_id == b.dataset_id


def test_another_seed_gives_other_layouts(tmp_path, rollout_path):
    other = tmp_path / "other.h5"
    collect(tiny_config(seed=4), "reach-v3", "train", other, trajectories=1, progress=False)
    with RolloutFile(rollout_path) as a, RolloutFile(other) as b:
        assert not np.array_equal(a.trajectories["layout"][0], b.trajectories["layout"][0])
        assert a.dataset_id != b.dataset_id


def test_correlated_noise_has_the_configured_statistics():
    noise = CorrelatedNoise(ActionNoiseConfig(std=0.5, correlation=0.8, gripper=True), np.random.default_rng(0))
    samples = np.array([noise() for _ in range(20000)])
    np.testing.assert_allclose(samples.std(axis=0), 0.5, rtol=0.06)
    lag1 = [np.corrcoef(samples[:-1, d], samples[1:, d])[0, 1] for d in range(4)]
    np.testing.assert_allclose(lag1, 0.8, atol=0.03)
    white = CorrelatedNoise(ActionNoiseConfig(std=1.0, correlation=0.0), np.random.default_rng(0))
    samples = np.array([white() for _ in range(5000)])
    assert abs(np.corrcoef(samples[:-1, 0], samples[1:, 0])[0, 1]) < 0.05
    assert (samples[:, 3] == 0).all()
