"""Readers refuse truncated, foreign and incomplete files; writers leave nothing half-written."""

import os
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from promptlam.data.h5file import DataFileError
from promptlam.data.rollout_file import RolloutFile, RolloutWriter

from conftest import TINY


def test_missing_file(tmp_path):
    with pytest.raises(DataFileError, match="rollout file not found"):
        RolloutFile(tmp_path / "nope.h5")


def test_truncated_file(tmp_path, rollout_path):
    truncated = tmp_path / "truncated.h5"
    data = rollout_path.read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    with pytest.raises(DataFileError, match="not a readable HDF5 file") as error:
        RolloutFile(truncated)
    assert str(truncated) in str(error.value) and "\n" not in str(error.value)


def test_bytes_changed_in_place_are_caught_by_the_checksums_in_one_line(tmp_path, rollout_path):
    from promptlam.cli import main

    damaged = tmp_path / "damaged.h5"
    shutil.copy(rollout_path, damaged)
    with h5py.File(damaged, "r") as f:
        dataset = f["frames/distracted"]
        assert dataset.fletcher32
        chunk = dataset.id.get_chunk_info(0)
    with open(damaged, "r+b") as f:  # flip bytes inside the first chunk of frames, as a bad disk would
        f.seek(chunk.byte_offset + chunk.size // 2)
        original = f.read(8)
        f.seek(chunk.byte_offset + chunk.size // 2)
        f.write(bytes(b ^ 0xFF for b in original))
    with RolloutFile(damaged) as rollouts:  # the structure is intact: it opens
        with pytest.raises(DataFileError, match="dataset 'frames/distracted' cannot be read") as error:
            rollouts["frames/distracted"][0:4]
        with pytest.raises(DataFileError):
            rollouts.trajectory(0)
        np.asarray(rollouts["state"])  # other datasets still read
    assert str(damaged) in str(error.value) and "\n" not in str(error.value)
    assert main(["rollouts", "inspect", str(damaged)]) == 2
    assert main(["rollouts", "inspect", str(rollout_path)]) == 0


def test_foreign_h5(tmp_path):
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(DataFileError, match="not a promptlam rollout file"):
        RolloutFile(foreign)


def test_incomplete_or_inconsistent_file(tmp_path, rollout_path):
    broken = tmp_path / "broken.h5"
    shutil.copy(rollout_path, broken)
    with h5py.File(broken, "a") as f:
        f.attrs["complete"] = False
    with pytest.raises(DataFileError, match="incomplete"):
        RolloutFile(broken)
    shutil.copy(rollout_path, broken)
    with h5py.File(broken, "a") as f:
        f["trajectories/length"][0] += 1
    with pytest.raises(DataFileError, match="does not tile"):
        RolloutFile(broken)


def test_writer_failure_leaves_no_file(tmp_path, config):
    from promptlam.config import StorageConfig

    out = tmp_path / "out.h5"
    with pytest.raises(RuntimeError):
        with RolloutWriter(out, task="reach-v3", split="train", resolution=8, config={}, provenance={},
                           storage=StorageConfig()):
            raise RuntimeError("crash")
    assert not out.exists() and not list(tmp_path.iterdir())


def test_killed_collection_leaves_nothing_a_rerun_trusts(tmp_path):
    import json

    out = tmp_path / "killed.h5"
    overrides = json.dumps({**TINY, "rollouts": {**TINY["rollouts"], "train_trajectories": 200,
                                                 "labelled_budgets": [1]}})
    command = [sys.executable, "-m", "promptlam", "rollouts", "collect", "--task", "reach-v3",
               "--split", "train", "--out", str(out), "--config-json", overrides]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tmp = tmp_path / "killed.h5.tmp"
    deadline = time.time() + 120
    while not tmp.exists() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not out.exists(), "a killed run must not leave a file under the final name"
    if tmp.exists():
        with pytest.raises(DataFileError):
            RolloutFile(tmp)
    # The rerun starts over and produces a valid file.
    command[command.index(overrides)] = json.dumps({**TINY, "rollouts": {**TINY["rollouts"], "train_trajectories": 1,
                                                                         "labelled_budgets": [1]}})
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with RolloutFile(out) as f:
        assert f.n_trajectories == 1
    assert not tmp.exists()


def test_every_field_is_documented():
    from conftest import REPO
    from promptlam.data.rollout_file import TRAJECTORY_FIELDS, row_fields

    text = (REPO / "docs/data.md").read_text()
    for name in row_fields(8):
        assert f"`{name}`" in text, name
    for name in TRAJECTORY_FIELDS:
        assert f"`trajectories/{name}`" in text, name
