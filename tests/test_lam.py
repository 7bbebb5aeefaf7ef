"""Latent action models: data windows, every forward-model variant, exact resume, probes."""

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from promptlam.config import validate_config
from promptlam.data.rollout_file import RolloutFile
from promptlam.errors import UserError
from promptlam.lam.augment import augment
from promptlam.lam.data import TaskFiles, TransitionData
from promptlam.lam.probe import probe_mse
from promptlam.lam.train import build_model, load_trained, train_run
from promptlam.runs import RunKey
from promptlam.targets import compute_target

from conftest import TINY

LAM = {"encoder_channels": [4, 8], "hidden_dim": 32, "max_offset": 3, "steps": 6, "batch_size": 8,
       "log_every": 2, "checkpoint_every": 2, "heldout_fraction": 0.25, "probe_horizons": [1, 2]}


TARGETS = {"pixels": {"kind": "pixels"}, "clean": {"kind": "clean"}, "state": {"kind": "state"},
           "clean-8": {"kind": "frame_vector", "frames": "clean", "size": 8}}


def lam_config(**lam):
    return validate_config({**TINY, "targets": TARGETS, "lam": {**LAM, **lam}}, "test config")


@pytest.fixture(scope="module")
def state_target(tmp_path_factory, rollout_path):
    out = tmp_path_factory.mktemp("targets") / "state.h5"
    compute_target(lam_config(), "state", "reach-v3", rollout_path, out, progress=False)
    return out


def test_windows_hold_the_right_frames(rollout_path):
    data = TransitionData([TaskFiles(rollout_path)], frame_stack=3, max_offset=3, next_frames=1)
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
        expected = [frames[max(start, row - 2 + j)] for j in range(3)]  # padded with frame 0
        np.testing.assert_array_equal(batch["obs"][i].numpy(), np.stack(expected))
        np.testing.assert_array_equal(batch["future"][i, -1].numpy(), frames[row + k[i]])
        assert batch["next_obs"].shape[1] == 1
        np.testing.assert_array_equal(batch["next_obs"][i, -1].numpy(), frames[row + 1])
        np.testing.assert_allclose(batch["action"][i].numpy(), actions[row:row + k[i]].mean(0), rtol=1e-6)
    data.close()


def test_offset_longer_than_episodes_is_an_error(rollout_path):
    with pytest.raises(UserError, match="lam.max_offset: 99 is not shorter than the shortest trajectory"):
        TransitionData([TaskFiles(rollout_path)], frame_stack=3, max_offset=99)


@pytest.fixture(scope="module")
def frame_vector_target(tmp_path_factory, rollout_path):
    out = tmp_path_factory.mktemp("targets") / "clean-8.h5"
    compute_target(lam_config(), "clean-8", "reach-v3", rollout_path, out, progress=False)
    return out


@pytest.mark.parametrize("method, target, formulation, extra", [
    ("lapo", "pixels", "absolute", {}),
    ("lapo", "clean", "absolute", {}),
    ("lapo", "clean", "delta", {"augment": True}),
    ("lapo-clean", "clean", "absolute", {}),
    ("laom", "ema", "absolute", {}),
    ("target", "state", "absolute", {}),
    ("target", "state", "delta", {}),
    ("target", "state", "conditioned", {"augment": True}),
    ("target", "clean-8", "delta", {}),
    ("target-clean", "clean-8", "conditioned", {}),
    ("lapo", "pixels", "absolute", {"vq": True, "vq_groups": 2, "vq_codes": 8, "augment": True}),
    ("lapo-trans", "pixels", "delta", {"transformer_layers": 1, "transformer_heads": 2, "patch_size": 16}),
    ("target-trans", "state", "delta", {"transformer_layers": 2, "transformer_heads": 2, "patch_size": 8}),
])
def test_every_forward_model_trains_and_probes(tmp_path, rollout_path, state_target, frame_vector_target, method,
                                               target, formulation, extra):
    config = lam_config(**extra)
    vector = {"state": state_target, "clean-8": frame_vector_target}.get(target)
    files = [TaskFiles(rollout_path, vector)]
    run = RunKey(method, target, formulation, 8, 0)
    metrics = train_run(config, run, files, tmp_path, ["reach-v3"], progress=False)
    assert metrics["steps"] == 6 and np.isfinite(metrics["final"]["loss"])
    assert metrics["heldout_probe"] == metrics["heldout_probe_by_horizon"]["1"]
    for horizon in ("1", "2"):
        probes = metrics["heldout_probe_by_horizon"][horizon]
        assert {"action_xyz", "residual", "hand_change"} <= set(probes)
        for quantity, probe in probes.items():
            assert all(np.isfinite(v) and v >= 0 for v in probe.values())
        assert "action+state" in probes["residual"] and "action+state" not in probes["action_xyz"]
    assert json.loads((tmp_path / "metrics.json").read_text())["run"]["formulation"] == formulation
    assert (tmp_path / "model.safetensors").exists() and (tmp_path / "run.json").exists()
    load_trained(tmp_path, config, run, ["reach-v3"], 64)  # the stored weights load into the same model


def test_killed_run_resumes_to_the_same_numbers(tmp_path, rollout_path):
    config = lam_config(log_every=1, checkpoint_every=2)
    files = [TaskFiles(rollout_path)]
    run = RunKey("lapo", "pixels", "absolute", 8, 1)
    whole = train_run(config, run, files, tmp_path / "whole", ["reach-v3"], progress=False)
    partial = train_run(config, run, files, tmp_path / "killed", ["reach-v3"], progress=False, stop_after=3)
    assert partial == {"step": 3, "finished": False}
    resumed = train_run(config, run, files, tmp_path / "killed", ["reach-v3"], progress=False)
    assert resumed["final"] == whole["final"] and resumed["heldout_probe"] == whole["heldout_probe"]
    from safetensors.torch import load_file

    a, b = load_file(tmp_path / "whole/model.safetensors"), load_file(tmp_path / "killed/model.safetensors")
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert (tmp_path / "whole/metrics.csv").read_text() == (tmp_path / "killed/metrics.csv").read_text()


def test_two_processes_train_one_run_in_step(tmp_path, rollout_path):
    """Under torchrun (accelerate's DDP; gloo on CPUs) both processes take every step with their
    share of the batch; the main process alone writes the run. A GPU pool in the environment is
    left to the launcher (its ranks pick their devices), so no process claims a device."""
    config = {**TINY, "targets": TARGETS, "lam": LAM}
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "promptlam", "lam", "train",
         "--method", "lapo", "--target", "pixels", "--latent-dim", "8", "--seed", "1", "--rollouts", str(rollout_path),
         "--out", str(tmp_path / "run"), "--config-json", json.dumps(config)],
        check=True, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PROMPTLAM_GPUS": "0,1", "TMPDIR": str(tmp_path)},
    )
    assert "using GPU" not in run.stderr
    metrics = json.loads((tmp_path / "run/metrics.json").read_text())
    assert metrics["processes"] == 2 and metrics["steps"] == LAM["steps"]
    rows = (tmp_path / "run/metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + LAM["steps"] // LAM["log_every"]  # logged once, not once per process
    load_trained(tmp_path / "run", validate_config(config), RunKey("lapo", "pixels", "absolute", 8, 1),
                 ["reach-v3"], 64)


def test_resume_refuses_corrupt_or_foreign_checkpoints(tmp_path, rollout_path):
    files = [TaskFiles(rollout_path)]
    run = RunKey("lapo", "pixels", "absolute", 8, 0)
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
    movement as well as the state does; one that encodes the noise adds to the state, and probes
    the residual below the state alone, down to the floor of the true action."""
    from promptlam.lam.probe import heldout_probes

    rng = np.random.default_rng(1)
    n = 3000
    state = rng.normal(size=(n, 5))
    noise = rng.normal(size=(n, 3)) * 0.5
    movement = state[:, :3] @ np.array([[1.0, 0.5, 0.0], [-0.5, 1.0, 0.2], [0.0, 0.3, 1.0]]) + noise
    gripper = np.sign(state[:, 3:4])  # a function of the state
    expert = np.concatenate([movement - noise, gripper], axis=1)
    columns = {"state": state, "action": np.concatenate([movement, gripper], axis=1), "expert": expert,
               "action_xyz": movement, "gripper": gripper, "residual": noise, "hand_change": 0.1 * movement,
               "latent": np.concatenate([noise, rng.normal(size=(n, 2))], axis=1),  # knows the noise
               "untrained_latent": state[:, :3] + 0.01 * rng.normal(size=(n, 3))}  # knows the state only
    fit = {k: v[:2000] for k, v in columns.items()}
    held = {k: v[2000:] for k, v in columns.items()}
    probes = heldout_probes(fit, held, ridge=1e-6)
    xyz, residual = probes["action_xyz"], probes["residual"]
    assert xyz["state"] == pytest.approx(0.25, rel=0.15)  # the noise variance is what is left
    assert xyz["latent+state"] < 0.01 and xyz["untrained_latent+state"] == pytest.approx(xyz["state"], rel=0.05)
    assert residual["state"] == pytest.approx(residual["variance"], rel=0.05)
    assert residual["latent+state"] < 0.01 and residual["action+state"] < 0.01
    assert residual["expert"] == pytest.approx(residual["variance"], rel=0.05)
    assert residual["latent+expert"] < 0.01 and residual["untrained_latent+expert"] > 0.9 * residual["variance"]
    assert probes["hand_change"]["latent+state"] < 0.01 * probes["hand_change"]["variance"]
    assert probes["gripper"]["state"] < probes["gripper"]["latent"]
    assert set(xyz) == {"latent", "untrained_latent", "state", "latent+state", "untrained_latent+state", "variance"}


def test_probe_quantities_clip_the_expert_and_average_the_window():
    from promptlam.lam.probe import probe_quantities

    state = np.zeros((5, 39))
    state[:, 0] = [0.0, 0.1, 0.3, 0.6, 1.0]  # hand x
    expert = np.array([[2.0, 0, 0, 1], [-0.5, 0, 0, 1], [0.2, 0, 0, 1], [0.0, 0, 0, 1], [0, 0, 0, 0]])
    noise = np.array([[-0.5, 0.1, 0, 0], [0.2, 0, 0, 0], [0.1, 0, 0, 0], [0.3, 0, 0, 0], [0, 0, 0, 0]])
    action = np.clip(expert + noise, -1, 1)
    action[-1] = 0  # the last frame takes no action
    one = probe_quantities(state, action, expert, horizon=1)
    # The realised noise: executed minus the clipped expert (2.0 - 0.5 executes 1.0 = clip(2.0)).
    np.testing.assert_allclose(one["residual"][:, 0], [0.0, 0.2, 0.1, 0.3])
    np.testing.assert_allclose(one["hand_change"][:, 0], [0.1, 0.2, 0.3, 0.4])
    np.testing.assert_allclose(one["action_xyz"], action[:4, :3])
    np.testing.assert_allclose(one["gripper"][:, 0], [1, 1, 1, 1])
    two = probe_quantities(state, action, expert, horizon=2)
    assert len(two["state"]) == 3
    np.testing.assert_allclose(two["residual"][:, 0], [0.1, 0.15, 0.2])
    np.testing.assert_allclose(two["hand_change"][:, 0], [0.3, 0.5, 0.7])
    np.testing.assert_allclose(two["action"], (action[:3] + action[1:4]) / 2)
    np.testing.assert_allclose(two["expert"][:, 0], [0.25, -0.15, 0.1])


def test_augmentation_warps_all_stacks_of_a_sample_alike():
    frames = torch.randint(0, 256, (4, 3, 16, 16, 3), dtype=torch.uint8)
    a, b = augment([frames, frames.clone()], torch.Generator().manual_seed(0))
    assert a.shape == frames.shape and a.dtype == torch.uint8 and torch.equal(a, b)
    assert not torch.equal(a, frames)
    c, = augment([frames], torch.Generator().manual_seed(0))
    assert torch.equal(a, c)


def test_run_config_errors():
    with pytest.raises(UserError, match="latent dims must be positive"):
        lam_config(runs=[{"method": "lapo", "target": "pixels", "latent_dims": [0]}])
    with pytest.raises(UserError, match=r"lam.runs.0: lapo predicts pixels or clean targets; 'state' is a state "
                                        r"target \(methods for it: target, target-clean, target-trans\)"):
        lam_config(runs=[{"method": "lapo", "target": "state"}])
    with pytest.raises(UserError, match="lapo takes the formulations absolute, delta, not 'conditioned'"):
        lam_config(runs=[{"method": "lapo", "target": "clean", "formulations": ["conditioned"]}])
    with pytest.raises(UserError, match="laom predicts its own EMA embedding"):
        lam_config(runs=[{"method": "laom", "target": "pixels"}])
    with pytest.raises(UserError, match=r"no target 'nope' \(defined: pixels, clean, state, clean-8\)"):
        lam_config(runs=[{"method": "target", "target": "nope"}])
    with pytest.raises(UserError, match="targets.clean-7.size: 7 does not divide render.resolution 64"):
        validate_config({**TINY, "targets": {"clean-7": {"kind": "frame_vector", "frames": "clean", "size": 7}}})


def test_formulations_form_the_target_from_frames_t_and_t_plus_1(rollout_path, state_target):
    """absolute: target(t+1); delta: target(t+1) - target(t) with the deltas' own statistics;
    conditioned: target(t+1), and target(t) as an input; all standardised per dimension."""
    from promptlam.data.target_file import TargetFile
    from promptlam.lam.data import delta_moments

    with RolloutFile(rollout_path) as rollouts, TargetFile(state_target, rollouts) as target:
        values = target.targets[()].astype(np.float64)
        starts, lengths = rollouts.trajectories["start"], rollouts.trajectories["length"]
        deltas = np.concatenate([np.diff(values[s:s + n], axis=0) for s, n in zip(starts, lengths)])
        moments = delta_moments(target, rollouts, rows_per_read=7)  # groups of whole trajectories
    mean, std = moments.mean_std()
    np.testing.assert_allclose(mean, deltas.mean(0), atol=1e-9)
    np.testing.assert_allclose(std, deltas.std(0), atol=1e-7)

    data = {f: TransitionData([TaskFiles(rollout_path, state_target)], 3, 3, formulation=f, std_floor=0.1)
            for f in ("absolute", "delta", "conditioned")}
    trajectory, t, k = data["absolute"].sample(seed=0, step=1, batch_size=12)
    batches = {f: d.batch(trajectory, t, k) for f, d in data.items()}
    rows = data["absolute"].starts[trajectory] + t
    for formulation, batch in batches.items():
        d = data[formulation]
        raw = batch["target"].numpy() * d.target_std.numpy() + d.target_mean.numpy()
        expected = values[rows + 1] - values[rows] if formulation == "delta" else values[rows + 1]
        np.testing.assert_allclose(raw, expected, atol=1e-4)
        assert ("target_now" in batch) == (formulation == "conditioned")
    now = batches["conditioned"]["target_now"].numpy() * data["conditioned"].target_std.numpy()
    np.testing.assert_allclose(now + data["conditioned"].target_mean.numpy(), values[rows], atol=1e-4)
    std = data["delta"].target_std.numpy()
    assert std.min() >= 0.1 * deltas.std(0).mean() - 1e-6  # nearly constant dims are not blown up
    np.testing.assert_array_equal(batches["delta"]["index"].numpy(), data["delta"].transitions[trajectory] + t)


def test_pixel_delta_predicts_the_change_of_the_target_frames(rollout_path):
    """For the clean-twin target the forward model sees distracted frames but predicts the clean
    frames' change, so a decoder that outputs the true change has zero loss."""
    from promptlam.lam.models import LatentActionModel

    config = lam_config()
    data = TransitionData([TaskFiles(rollout_path)], 3, 3, "distracted", "clean", formulation="delta", next_frames=1)
    batch = data.batch(*data.sample(seed=0, step=0, batch_size=6))
    with RolloutFile(rollout_path) as rollouts:
        clean = rollouts["frames/clean"][()]
    rows = data.starts[data.sample(seed=0, step=0, batch_size=6)[0]] + data.sample(seed=0, step=0, batch_size=6)[1]
    np.testing.assert_array_equal(batch["target_obs"][:, -1].numpy(), clean[rows])
    np.testing.assert_array_equal(batch["next_obs"][:, -1].numpy(), clean[rows + 1])
    model = LatentActionModel(config.lam, "lapo", 8, 64, formulation="delta")
    true_change = model.observe(batch["next_obs"]) - model.observe(batch["target_obs"])
    with torch.no_grad():
        model.to_change.weight.zero_()
        model.to_change.bias.zero_()
        zero_loss = model(batch).fdm_loss
    assert zero_loss == pytest.approx(float((true_change**2).mean()), rel=1e-5)


def test_a_screening_run_trains_on_its_subset_and_records_it(tmp_path, rollout_path):
    """The first trajectories only (3 of 4 with one task): the run's data has their transitions."""
    from promptlam.lam.train import build_data
    from promptlam.lam.data import screening_subsets

    config = lam_config()
    files = [TaskFiles(rollout_path)]
    run = RunKey("lapo", "pixels", "absolute", 8, 0, trajectories=2)
    data = build_data(config, run, files, screening_subsets(files, run.trajectories, config.lam.heldout_fraction))
    full = build_data(config, run, files)
    assert len(data.starts) == 2 and list(data.starts) == list(full.starts[:2])
    train_run(config, run, files, tmp_path, ["reach-v3"], progress=False)
    assert json.loads((tmp_path / "run.json").read_text())["run"]["trajectories"] == 2


def test_the_transformer_inverse_model_refuses_patches_that_do_not_tile_the_frame(rollout_path):
    config = lam_config(patch_size=7)
    with pytest.raises(ValueError, match="lam.patch_size: 7 does not divide the frame size 64"):
        build_model(config, RunKey("target-trans", "state", "absolute", 8, 0),
                    SimpleNamespace(target_dim=39, frame_size=64), "x")
