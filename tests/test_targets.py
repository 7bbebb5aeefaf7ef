"""The targets stage: pooling and layers by hand, prompts, every target kind end to end, errors."""

import json
import re
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

from promptlam.config import VLMTarget, validate_config
from promptlam.data.h5file import DataFileError
from promptlam.data.rollout_file import RolloutFile
from promptlam.data.target_file import TargetFile
from promptlam.errors import UserError
from promptlam.targets import compute_target, encode_rows
from promptlam.tasks import MT10, task_text
from promptlam.vlm.encoder import FrameEncoder
from promptlam.vlm.families import get_family
from promptlam.vlm.pooling import pool, resolve_layer

from conftest import TINY

PROMPT = "Do not describe background features. Focus on the robot arm and the {object}."


# --------------------------------------------------------------------------------- by hand
def test_pooling_matches_a_hand_computation():
    hidden = torch.arange(2 * 5 * 3, dtype=torch.float32).reshape(2, 5, 3)
    attention = torch.tensor([[1, 1, 1, 1, 0], [0, 1, 1, 1, 1]])  # right and left padding
    image = torch.tensor([[0, 1, 1, 0, 0], [0, 0, 1, 0, 0]])
    expected = {
        "mean_all": [hidden[0, :4].mean(0), hidden[1, 1:].mean(0)],
        "mean_image": [hidden[0, 1:3].mean(0), hidden[1, 2]],
        "mean_text": [(hidden[0, 0] + hidden[0, 3]) / 2, (hidden[1, 1] + hidden[1, 3] + hidden[1, 4]) / 3],
        "last": [hidden[0, 3], hidden[1, 4]],
    }
    for mode, rows in expected.items():
        torch.testing.assert_close(pool(hidden, attention, image, mode), torch.stack(rows), msg=mode)
    with pytest.raises(UserError, match="no such tokens"):
        pool(hidden, attention, torch.zeros_like(image), "mean_image")


def test_layer_specs():
    assert [resolve_layer(s, 4) for s in (-1, -2, "middle", 0, 4)] == [4, 3, 2, 0, 4]
    for bad in (5, -6):
        with pytest.raises(UserError, match="out of range: the model has 4 layers"):
            resolve_layer(bad, 4)


def test_prompts_are_rendered_per_task():
    rendered = {task: PROMPT.format(**task_text(task)) for task in MT10}
    assert rendered["pick-place-v3"].endswith("the robot arm and the puck.")
    assert rendered["door-open-v3"].endswith("the door.")
    assert len(set(rendered.values())) > 5
    assert task_text("basketball-v3") == {"task": "basketball", "object": "basketball"}


# ------------------------------------------------------------------------------- the stage
@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models") / "llava"
    get_family("llava").build_tiny(folder)
    return str(folder)


def config_with(targets):
    return validate_config({**TINY, "targets": targets}, "test config")


def vlm(folder, **overrides):
    return {"kind": "vlm", "family": "llava", "model": folder, "prompt": PROMPT, "precision": "fp32",
            "image_size": 32, "batch_size": 5, **overrides}


def test_every_target_kind_is_aligned_with_the_rollouts(tmp_path, rollout_path, tiny_llava):
    config = config_with({"pixels": {"kind": "pixels"}, "clean": {"kind": "clean"}, "state": {"kind": "state"},
                          "vlm": vlm(tiny_llava, layers=[-1, "middle"]),
                          "clean-16": {"kind": "frame_vector", "frames": "clean", "size": 16}})
    with RolloutFile(rollout_path) as rollouts:
        for name in config.targets:
            out = tmp_path / name / "reach-v3.h5"
            compute_target(config, name, "reach-v3", rollout_path, out, progress=False, workers=0)
            with TargetFile(out, rollouts) as target:
                values = target.targets[()]
                assert values.shape[0] == rollouts.n_frames
                if name in ("pixels", "clean"):
                    kind = "distracted" if name == "pixels" else "clean"
                    np.testing.assert_array_equal(values, rollouts[f"frames/{kind}"][()])
                    mean, std = target.moments().mean_std()
                    np.testing.assert_allclose(mean, values.reshape(-1, 3).mean(0), rtol=1e-9)
                elif name == "state":
                    np.testing.assert_array_equal(values, rollouts["state"][()].astype(np.float16))
                elif name == "clean-16":
                    # Each entry: the mean of a 4 x 4 block of one channel of the clean frame, in [-1, 1].
                    frames = rollouts["frames/clean"][()].astype(np.float64)
                    assert values.shape == (rollouts.n_frames, 16 * 16 * 3) and values.dtype == np.float16
                    block = frames[:, 4:8, 8:12, 1].mean(axis=(1, 2)) / 127.5 - 1
                    np.testing.assert_allclose(values.reshape(-1, 16, 16, 3)[:, 1, 2, 1], block, atol=2e-3)
                else:
                    assert values.dtype == np.float16 and values.shape[1] == 2 * 64
                    assert target.attrs["prompt"] == "Do not describe background features. Focus on the robot arm and the goal."
                    assert target.provenance["family"] == "llava" and target.provenance["layers"] == [2, 1]
                if name != "pixels" and name != "clean":
                    mean, std = target.moments().mean_std()
                    np.testing.assert_allclose(mean, values.astype(np.float64).mean(0), rtol=1e-6, atol=1e-9)
                    np.testing.assert_allclose(std, values.astype(np.float64).std(0), rtol=1e-6, atol=1e-9)


def test_model_targets_are_deterministic_and_batch_size_free(tmp_path, rollout_path, tiny_llava):
    outputs = []
    for batch_size, workers in ((5, 0), (64, 1)):
        config = config_with({"vlm": vlm(tiny_llava, batch_size=batch_size)})
        out = tmp_path / f"b{batch_size}.h5"
        compute_target(config, "vlm", "reach-v3", rollout_path, out, progress=False, workers=workers)
        with h5py.File(out) as f:
            outputs.append(f["targets"][()])
    np.testing.assert_allclose(outputs[0].astype(np.float32), outputs[1].astype(np.float32), atol=2e-3)


def test_out_of_memory_halves_the_batch(tmp_path, rollout_path, tiny_llava):
    encoder = FrameEncoder(VLMTarget(**vlm(tiny_llava)))

    class FailsAboveFour:
        """The real encoder, but a batch over 4 frames runs out of memory as a GPU would."""
        preprocess = encoder.preprocess

        def encode(self, inputs):
            if inputs["input_ids"].shape[0] > 4:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
            return encoder.encode(inputs)

    with RolloutFile(rollout_path) as rollouts:
        n_frames = rollouts.n_frames
    written = np.zeros((n_frames, 64), np.float32)
    rows = []

    def write(row, values):
        written[row:row + len(values)] = values
        rows.append(row)

    stats = encode_rows(FailsAboveFour(), rollout_path, 0, n_frames, encoder.model_text("reach-v3"), write,
                        batch_size=16, workers=0, progress=False)
    assert stats.batch_size == 4 and stats.frames == n_frames
    assert rows == list(range(0, n_frames, 4))
    with RolloutFile(rollout_path) as rollouts:
        np.testing.assert_allclose(written[:8], encoder(rollouts["frames/distracted"][:8], "reach-v3"), atol=1e-5)


@pytest.mark.parametrize("precision", ["bf16", "int8", "int4"])
def test_reduced_precision_paths_run_on_cpu(precision, rollout_path, tiny_llava):
    with RolloutFile(rollout_path) as rollouts:
        frames = rollouts["frames/distracted"][:4]
    reference = FrameEncoder(VLMTarget(**vlm(tiny_llava)))(frames, "reach-v3")
    reduced = FrameEncoder(VLMTarget(**vlm(tiny_llava, precision=precision)))(frames, "reach-v3")
    assert reduced.shape == reference.shape and np.isfinite(reduced).all()
    correlation = np.corrcoef(reference.ravel(), reduced.ravel())[0, 1]
    assert correlation > 0.9, f"{precision} strays from fp32 (correlation {correlation:.3f})"


def test_sharded_over_two_processes_equals_one(tmp_path, rollout_path, tiny_llava):
    config = {**TINY, "targets": {"vlm": vlm(tiny_llava)}}
    single = tmp_path / "single.h5"
    compute_target(validate_config(config), "vlm", "reach-v3", rollout_path, single, progress=False, workers=0)
    sharded = tmp_path / "sharded.h5"
    subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "promptlam", "targets",
         "compute", "--target", "vlm", "--task", "reach-v3", "--rollouts", str(rollout_path), "--out", str(sharded),
         "--workers", "0", "--config-json", json.dumps(config)],
        check=True, capture_output=True, timeout=300,
    )
    with TargetFile(single) as a, TargetFile(sharded) as b:
        np.testing.assert_array_equal(a.targets[()], b.targets[()])
        assert b.provenance["processes"] == 2
    assert not list(tmp_path.glob("*.part*"))


# ---------------------------------------------------------------------------------- errors
def test_errors_come_before_any_model_loads(tmp_path, rollout_path, tiny_llava, monkeypatch):
    from promptlam.vlm.families.llava import Llava

    def no_loading(*args, **kwargs):
        raise AssertionError("weights were loaded before the input was checked")

    monkeypatch.setattr(Llava, "load_model", no_loading)
    cases = [
        ({"vlm": vlm(tiny_llava, layers=7)}, "vlm", "reach-v3", "targets.vlm.layers: layer 7 is out of range"),
        ({"vlm": vlm(tiny_llava)}, "other", "reach-v3", "targets.other: no such target"),
        ({"vlm": vlm("someone/not-downloaded", revision="main")}, "vlm", "reach-v3",
         "hf download someone/not-downloaded --revision main"),
        ({"vlm": vlm("someone/not-downloaded")}, "vlm", "reach-v3", "targets.vlm.revision: name the revision"),
        ({"vlm": vlm("allenai/Molmo-7B-D-0924", family="molmo", revision="main")}, "vlm", "reach-v3",
         "load only at a pinned 40-character commit hash"),
        ({"vlm": vlm(tiny_llava)}, "vlm", "push-v3", "holds task 'reach-v3', not 'push-v3'"),
        ({"vlm": vlm("allenai/Molmo-7B-D-0924", family="molmo", revision="0" * 40, generate_tokens=2)}, "vlm",
         "reach-v3", "targets.vlm.generate_tokens: molmo models cannot generate"),
    ]
    for targets, name, task, fragment in cases:
        with pytest.raises(UserError) as error:
            compute_target(config_with(targets), name, task, rollout_path, tmp_path / "x.h5", progress=False)
        assert fragment in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "x.h5").exists()


def test_target_files_refuse_other_rollouts(tmp_path, rollout_path):
    from promptlam.data.collect import collect
    from conftest import tiny_config

    config = config_with({"state": {"kind": "state"}})
    compute_target(config, "state", "reach-v3", rollout_path, tmp_path / "state.h5", progress=False)
    other = tmp_path / "other.h5"
    collect(tiny_config(seed=11), "reach-v3", "train", other, trajectories=1, progress=False)
    with RolloutFile(other) as rollouts, pytest.raises(DataFileError, match="rollouts_dataset_id differs"):
        TargetFile(tmp_path / "state.h5", rollouts)
    with pytest.raises(DataFileError, match="not a promptlam target file"):
        TargetFile(rollout_path)


def test_bad_prompts_fail_in_the_config():
    for prompt, fragment in (("Focus on the {thing}.", "unknown placeholder(s) ['thing']"),
                             ("Focus on the {object", "not a valid template"), ("  ", "prompt is empty")):
        with pytest.raises(UserError, match=re.escape(fragment)):
            config_with({"vlm": vlm("x", prompt=prompt)})
