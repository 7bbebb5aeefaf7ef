"""Latent action models: data windows, every forward-model variant, exact resume, probes."""

import json

import numpy as np
import pytest
import torch

from promptlam.config import validate_config
from promptlam.data.rollout_file import RolloutFile
from promptlam.errors import UserError
from promptlam.lam.augment import augment
from promptlam.lam.data import TaskFiles, TransitionData
from promptlam.lam.probe import probe_mse
from promptlam.lam.train import RunKey, train_run
from promptlam.targets import compute_target

from conftest import TINY

LAM = {"encoder_channels": [4, 8], "hidden_dim": 32, "max_offset": 3, "steps": 6, "batch_size": 8,
       "log_every": 2, "checkpoint_every": 2, "heldout_fraction": 0.25, "probe_horizons": [1, 2]}


def lam_config(**lam):
    return validate_config({**TINY, "targets": {"pixels": {"kind": "pixels"}, "clean": {"kind": "clean"},
                                                "state": {"kind": "state"}},
                            "lam": {**LAM, **lam}}, "test config")


@pytest.fixture(scope="module")
def state_target(tmp_path_factory, rollout_path):
    out = tmp_path_factory.mktemp("targets") / "state.h5"
    compute_target(lam_config(), "state", "reach-v3", rollout_path, out, progress=False)
    return out


def test_windows_hold_the_right_frames(rollout_path):
    data = TransitionData([TaskFiles(rollout_path)], frame_stack=3, max_offset=3)
    trajectory, t, k = data.sample(seed=0, step=5, batch_size=16)
    again = data.sample(seed=0, step=5, batch_size=16)
    assert all(np.array_equal(a, b) for a, b in zip((trajectory, t, k), again))
    assert (k >= 1).all() and (k <= 3).all() and (t + k <= data.lengths[trajectory] - 1).all()
    batch = data.batch(trajectory, t, k)
    with RolloutFile(rollout_path) as rollouts:
        frames = rollouts["frames/distracted"][()]
        actions = rollouts["action"][()]
    for i in range(16):
        row = int(data.starts[trajectory[i]]) + int(t[i])
        start = int(data.starts[trajectory[i]])
        expected = [frames[max(start, row - 2 + j)].transpose(2, 0, 1) for j in range(3)]
        np.testing.assert_array_equal(batch["obs"][i].numpy(), np.concatenate(expected))
        np.testing.assert_array_equal(batch["future"][i, -3:].numpy(), frames[row + k[i]].transpose(2, 0, 1))
        np.testing.assert_array_equal(batch["next_obs"][i, -3:].numpy(), frames[row + 1].transpose(2, 0, 1))
        np.testing.assert_allclose(batch["action"][i].numpy(), actions[row:row + k[i]].mean(0), rtol=1e-6)
    data.close()


def test_offset_longer_than_episodes_is_an_error(rollout_path):
    with pytest.raises(UserError, match="lam.max_offset: 99 is not shorter than the shortest trajectory"):
        TransitionData([TaskFiles(rollout_path)], frame_stack=3, max_offset=99)


@pytest.mark.parametrize("method, target, extra", [
    ("lapo", "pixels", {}),
    ("lapo", "clean", {}),
    ("lapo-clean", "clean", {}),
    ("laom", "ema", {}),
    ("target", "state", {}),
    ("lapo", "pixels", {"vq": True, "vq_groups": 2, "vq_codes": 8, "augment": True}),
])
def test_every_forward_model_trains_and_probes(tmp_path, rollout_path, state_target, method, target, extra):
    config = lam_config(**extra)
    files = [TaskFiles(rollout_path, state_target if method == "target" else None)]
    metrics = train_run(config, RunKey(method, target, 8, 0), files, tmp_path, ["reach-v3"], progress=False)
    assert metrics["steps"] == 6 and np.isfinite(metrics["final"]["loss"])
    assert metrics["heldout_probe"] == metrics["heldout_probe_by_horizon"]["1"]
    for horizon in ("1", "2"):
        for kind in ("action", "noise"):
            probe = metrics["heldout_probe_by_horizon"][horizon][kind]
            assert all(np.isfinite(v) and v >= 0 for v in probe.values())
    assert json.loads((tmp_path / "metrics.json").read_text())["run"]["method"] == method
    assert (tmp_path / "model.safetensors").exists() and (tmp_path / "run.json").exists()


def test_killed_run_resumes_to_the_same_numbers(tmp_path, rollout_path):
    config = lam_config(log_every=1, checkpoint_every=2)
    files = [TaskFiles(rollout_path)]
    run = RunKey("lapo", "pixels", 8, 1)
    whole = train_run(config, run, files, tmp_path / "whole", ["reach-v3"], progress=False)
    partial = train_run(config, run, files, tmp_path / "killed", ["reach-v3"], progress=False, stop_after=3)
    assert partial == {"step": 3, "finished": False}
    resumed = train_run(config, run, files, tmp_path / "killed", ["reach-v3"], progress=False)
    assert resumed["final"] == whole["final"] and resumed["heldout_probe"] == whole["heldout_probe"]
    from safetensors.torch import load_file

    a, b = load_file(tmp_path / "whole/model.safetensors"), load_file(tmp_path / "killed/model.safetensors")
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert (tmp_path / "whole/metrics.csv").read_text() == (tmp_path / "killed/metrics.csv").read_text()


def test_resume_refuses_corrupt_or_foreign_checkpoints(tmp_path, rollout_path):
    files = [TaskFiles(rollout_path)]
    run = RunKey("lapo", "pixels", 8, 0)
    train_run(lam_config(), run, files, tmp_path, ["reach-v3"], progress=False, stop_after=2)
    with pytest.raises(UserError, match=r"made under a different config \(config.lam.learning_rate differs\)"):
        train_run(lam_config(learning_rate=3e-4), run, files, tmp_path, ["reach-v3"], progress=False)
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="corrupt checkpoint"):
        train_run(lam_config(), run, files, tmp_path, ["reach-v3"], progress=False)


def test_probe_recovers_a_known_linear_map():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 6))
    w = rng.normal(size=(6, 3))
    y = x @ w + 0.1 * rng.normal(size=(2000, 3))
    assert probe_mse(x[:1500], y[:1500], x[1500:], y[1500:], ridge=1e-6) == pytest.approx(0.01, rel=0.15)
    unrelated = rng.normal(size=(2000, 6))
    mse = probe_mse(unrelated[:1500], y[:1500], unrelated[1500:], y[1500:], ridge=1e-6)
    assert mse == pytest.approx(y[1500:].var(axis=0).mean(), rel=0.1)


def test_probes_separate_action_information_from_state_information():
    """An expert's action = f(state) + noise. A latent that encodes only the state probes the
    action as well as the state does; one that encodes the noise adds to the state."""
    from promptlam.lam.probe import heldout_probes

    rng = np.random.default_rng(1)
    state = rng.normal(size=(3000, 5))
    noise = rng.normal(size=(3000, 2)) * 0.5
    action = state[:, :2] @ np.array([[1.0, 0.5], [-0.5, 1.0]]) + noise
    columns = {"state": state, "action": action, "noise": noise,
               "latent": np.concatenate([noise, rng.normal(size=(3000, 2))], axis=1),  # knows the noise
               "untrained_latent": state[:, :3] + 0.01 * rng.normal(size=(3000, 3))}  # knows the state only
    fit = {k: v[:2000] for k, v in columns.items()}
    held = {k: v[2000:] for k, v in columns.items()}
    probes = heldout_probes(fit, held, ridge=1e-6)
    action, noise = probes["action"], probes["noise"]
    assert action["state"] == pytest.approx(0.25, rel=0.15)  # the noise variance is what is left
    assert action["latent+state"] < 0.01 and action["untrained_latent+state"] == pytest.approx(action["state"], rel=0.05)
    assert noise["latent"] < 0.01 and noise["state"] == pytest.approx(noise["variance"], rel=0.05)
    assert noise["true_action"] < noise["variance"]


def test_augmentation_warps_all_stacks_of_a_sample_alike():
    frames = torch.randint(0, 256, (4, 9, 16, 16), dtype=torch.uint8)
    a, b = augment([frames, frames.clone()], torch.Generator().manual_seed(0))
    assert a.shape == frames.shape and a.dtype == torch.uint8 and torch.equal(a, b)
    assert not torch.equal(a, frames)
    c, = augment([frames], torch.Generator().manual_seed(0))
    assert torch.equal(a, c)


def test_run_config_errors():
    with pytest.raises(UserError, match="latent dims must be positive"):
        lam_config(runs=[{"method": "lapo", "target": "pixels", "latent_dims": [0]}])
    with pytest.raises(UserError, match="lapo predicts frames"):
        lam_config(runs=[{"method": "lapo", "target": "state"}])
