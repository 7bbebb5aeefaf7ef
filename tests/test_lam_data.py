"""The LAM data path: rows placed once (RAM, device or streamed blocks), batches gathered by
index, the same batches wherever the rows live, and training that does not depend on it."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from promptlam.errors import UserError
from promptlam.lam.data import BlockSchedule, TaskFiles, TransitionData
from promptlam.lam.models import LatentActionModel
from promptlam.lam.train import train_run
from promptlam.runs import RunKey, run_record

from test_lam import lam_config, state_target  # noqa: F401 (a fixture)

CPU = torch.device("cpu")


def twin_data(rollout_path, target=None, **options) -> TransitionData:
    """Distracted frames in, clean frames and (optionally) a vector target out: every kind of row."""
    return TransitionData([TaskFiles(rollout_path, target)], 3, 3, "distracted", "clean", formulation="delta",
                          next_frames=1, **options)


def assert_same_batches(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_placed_batches_are_the_rows_read_trajectory_by_trajectory(rollout_path, state_target):  # noqa: F811
    placed, unplaced = twin_data(rollout_path, state_target), twin_data(rollout_path, state_target)
    assert placed.place("auto", CPU, 0.6, log=False) == "ram"
    assert {"obs", "future", "next_obs", "target_obs", "action", "target", "task", "index"} <= set(
        placed.step_batch(0, 0, 8))
    for step in range(4):
        sampled = placed.sample(0, step, 8)
        assert_same_batches(placed.step_batch(0, step, 8), unplaced.batch(*sampled))
    placed.close()
    unplaced.close()


def test_streamed_blocks_give_the_batches_of_resident_rows(rollout_path, state_target):  # noqa: F811
    resident = twin_data(rollout_path, state_target, shuffle_buffer=2)
    streamed = twin_data(rollout_path, state_target, shuffle_buffer=2)
    assert resident.place("ram", CPU, 0.6, log=False) == "ram"
    assert streamed.place("auto", CPU, 1e-12, log=False) == "stream"  # fits nowhere: streamed
    blocks = set()
    for step in range(40):
        assert_same_batches(resident.step_batch(0, step, 8), streamed.step_batch(0, step, 8))
        assert len(streamed._blocks) <= 2  # the current block and the next one
        blocks.add(streamed.schedule.block_number(0, step, 8))
        trajectory, _, _ = streamed.sample(0, step, 8)
        assert set(trajectory) <= set(streamed.schedule.block(0, step, 8))  # a step draws from its block
    assert len(blocks) > 2 and streamed._resident is None
    resident.close()
    streamed.close()


def test_blocks_cover_every_trajectory_once_a_pass():
    lengths = np.array([10, 20, 30, 40, 50, 60, 70])
    schedule = BlockSchedule(lengths, 3)
    assert schedule.n_blocks == 3
    for pass_number in range(2):
        blocks = [schedule.block_trajectories(5, pass_number * 3 + b) for b in range(3)]
        assert sorted(np.concatenate(blocks)) == list(range(7))
    assert not all(np.array_equal(schedule.block_trajectories(5, b), schedule.block_trajectories(5, b + 3))
                   for b in range(3))  # each pass its own permutation
    steps = [schedule.block_number(5, step, 16) for step in range(60)]
    assert steps == sorted(steps) and steps[0] == 0
    first = schedule.block_trajectories(5, 0)
    assert steps.count(0) == int(np.ceil((lengths[first] - 1).sum() / 16))


def test_rows_that_fit_nowhere_stop_in_one_line(rollout_path):
    data = twin_data(rollout_path)
    with pytest.raises(UserError, match=r"lam.shuffle_buffer: the training rows take [0-9.]+ [MG]B, more than "
                                        r"lam.resident_memory_fraction 1e-12 of the free memory"):
        data.place("auto", CPU, 1e-12, log=False)
    with pytest.raises(UserError, match="lam.data_placement: `stream` reads blocks of lam.shuffle_buffer"):
        data.place("stream", CPU, 0.6, log=False)
    assert data.place("device", CPU, 0.6, log=False) == "ram"  # on the CPU, RAM is the device


def test_observe_reorders_and_scales_in_one_copy():
    frames = torch.randint(0, 256, (2, 3, 8, 8, 3), dtype=torch.uint8)
    channels_first = frames.permute(0, 1, 4, 2, 3).reshape(2, 9, 8, 8)  # frame-major, colours together
    expected = channels_first.contiguous(memory_format=torch.channels_last).float() / 127.5 - 1
    observed = LatentActionModel.observe(frames)
    assert torch.equal(observed, expected)
    assert observed.is_contiguous(memory_format=torch.channels_last)


def test_training_does_not_depend_on_where_the_rows_live(tmp_path, rollout_path):
    files, run = [TaskFiles(rollout_path)], RunKey("lapo", "clean", "delta", 8, 0)
    weights = {}
    for placement in ("ram", "stream"):
        config = lam_config(shuffle_buffer=2, data_placement=placement, augment=True)
        train_run(config, run, files, tmp_path / placement, ["reach-v3"], progress=False)
        weights[placement] = load_file(tmp_path / placement / "model.safetensors")
    assert all(torch.equal(weights["ram"][key], weights["stream"][key]) for key in weights["ram"])
    assert (tmp_path / "ram/metrics.csv").read_text() == (tmp_path / "stream/metrics.csv").read_text()


def test_a_run_records_what_changes_its_numbers_only(tmp_path):
    run = RunKey("lapo", "pixels", "absolute", 8, 0)
    base = run_record(lam_config(), run, ["reach-v3"])
    assert run_record(lam_config(data_placement="stream", resident_memory_fraction=0.3), run, ["reach-v3"]) == base
    assert run_record(lam_config(shuffle_buffer=4), run, ["reach-v3"])["config"]["lam"]["shuffle_buffer"] == 4
    assert run_record(lam_config(fast_kernels=True), run, ["reach-v3"]) != base


def test_fast_kernels_train_to_the_eager_numbers_within_rounding(tmp_path, rollout_path):
    """`lam.fast_kernels` (torch.compile, fused AdamW) runs on a CPU too: the same run, equal
    within float rounding."""
    files, run = [TaskFiles(rollout_path)], RunKey("lapo", "pixels", "absolute", 8, 0)
    weights = {}
    for fast in (False, True):
        train_run(lam_config(fast_kernels=fast, steps=3), run, files, tmp_path / str(fast), ["reach-v3"],
                  progress=False)
        weights[fast] = load_file(tmp_path / str(fast) / "model.safetensors")
    assert weights[False].keys() == weights[True].keys()
    for key, eager in weights[False].items():
        torch.testing.assert_close(weights[True][key], eager, rtol=1e-4, atol=1e-5)
