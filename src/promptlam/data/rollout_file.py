"""The rollout file: one HDF5 file per task and split, all trajectories back to back.

Per-frame datasets share one row index (RLDS-style): row ``r`` holds a frame, the state it
shows, and the action taken from it; the last row of a trajectory has zero action and reward.
The ``trajectories`` group says where each trajectory starts and how many frames it has.
See docs/data.md for every field.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from promptlam.config import Config, StorageConfig, validate_config
from promptlam.data.h5file import CHECKSUMS, AtomicH5Writer, CheckedDataset, CheckedH5File
from promptlam.tasks import ACTION_DIM, STATE_DIM

FORMAT = "promptlam.rollouts"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Field:
    dtype: Any
    shape: tuple[int, ...]
    doc: str


def row_fields(resolution: int) -> dict[str, Field]:
    """The per-frame datasets of a rollout file at ``resolution``."""
    frame = (resolution, resolution, 3)
    return {
        "frames/distracted": Field(np.uint8, frame, "frame with the background video (what models see)"),
        "frames/clean": Field(np.uint8, frame, "the same physics state rendered without distractor"),
        "state": Field(np.float32, (STATE_DIM,), "MetaWorld's 39-d observation in this frame"),
        "action": Field(np.float32, (ACTION_DIM,), "action executed from this frame: clip(clip(expert) + noise)"),
        "expert_action": Field(np.float32, (ACTION_DIM,), "the scripted expert's action, as it gave it (not clipped)"),
        "action_noise": Field(np.float32, (ACTION_DIM,), "noise sampled for this step (before clipping)"),
        "reward": Field(np.float32, (), "reward summed over the action's repeated env steps"),
        "success": Field(np.bool_, (), "MetaWorld's success flag for the state in this frame"),
        "gripper_px": Field(np.float32, (2,), "gripper centre in frame pixels (x right, y down)"),
        "video_frame": Field(np.int32, (), "index of the background video frame shown (-1: none)"),
    }


TRAJECTORY_FIELDS = {
    "start": "row of the trajectory's first frame",
    "length": "frames in the trajectory (actions taken + 1)",
    "seed": "episode seed: reset(seed=...) of DistractingMetaWorld reproduces layout and video",
    "success": "whether the expert succeeded at any step",
    "layout": "MetaWorld's random vector of object and goal positions",
    "video": "background video name",
    "video_start": "video frame shown at the first step",
}


def dataset_id(config: dict[str, Any], task: str, split: str) -> str:
    """Identifier of a rollout file's content: equal ids mean equal config, task and split."""
    record = json.dumps({"config": config, "task": task, "split": split}, sort_keys=True)
    return hashlib.sha256(record.encode()).hexdigest()[:16]


class RolloutWriter(AtomicH5Writer):
    """Appends trajectories; the file appears under ``path`` only when closed cleanly."""

    def __init__(self, path: str | Path, *, task: str, split: str, resolution: int,
                 config: dict[str, Any], provenance: dict[str, Any], storage: StorageConfig) -> None:
        super().__init__(path)
        self.fields = row_fields(resolution)
        self.attrs = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "task": task,
            "split": split,
            "resolution": resolution,
            "dataset_id": dataset_id(config, task, split),
            "config": json.dumps(config, sort_keys=True),
            "provenance": json.dumps(provenance, sort_keys=True),
        }
        self.storage = storage
        self.rows = 0
        self.trajectories: dict[str, list] = {name: [] for name in TRAJECTORY_FIELDS}

    def _create(self) -> None:
        compression = None if self.storage.compression == "none" else self.storage.compression
        for name, field in self.fields.items():
            is_frame = name.startswith("frames/")
            chunk_rows = self.storage.chunk_frames if is_frame else 1024
            self.file.create_dataset(
                name, shape=(0, *field.shape), maxshape=(None, *field.shape), dtype=field.dtype,
                chunks=(chunk_rows, *field.shape), compression=compression if is_frame else None, **CHECKSUMS,
            )

    def append(self, rows: dict[str, np.ndarray], trajectory: dict[str, Any]) -> None:
        """Add one trajectory: ``rows`` holds every per-frame field, ``trajectory`` its record."""
        length = len(rows["state"])
        for name, field in self.fields.items():
            values = np.asarray(rows[name], dtype=field.dtype)
            if values.shape != (length, *field.shape):
                raise ValueError(f"{name}: expected shape {(length, *field.shape)}, got {values.shape}")
            dataset = self.file[name]
            dataset.resize(self.rows + length, axis=0)
            dataset[self.rows:] = values
        self.trajectories["start"].append(self.rows)
        self.trajectories["length"].append(length)
        for name in ("seed", "success", "layout", "video", "video_start"):
            self.trajectories[name].append(trajectory[name])
        self.rows += length

    def _finalize(self) -> None:
        group = self.file.create_group("trajectories")
        table = self.trajectories
        group["start"] = np.array(table["start"], dtype=np.int64)
        group["length"] = np.array(table["length"], dtype=np.int64)
        group["seed"] = np.array(table["seed"], dtype=np.int64)
        group["success"] = np.array(table["success"], dtype=bool)
        group["layout"] = np.array(table["layout"], dtype=np.float64)
        group["video"] = np.array(table["video"], dtype=h5py.string_dtype())
        group["video_start"] = np.array(table["video_start"], dtype=np.int32)
        for key, value in self.attrs.items():
            self.file.attrs[key] = value
        self.file.attrs["complete"] = True  # last: readers refuse a file without it


class RolloutFile(CheckedH5File):
    """Read access to a rollout file, checked on open. Datasets are read lazily from disk."""

    FORMAT, FORMAT_VERSION, DESCRIPTION = FORMAT, FORMAT_VERSION, "rollout file"

    def _check(self) -> None:
        self.resolution = int(self.file.attrs["resolution"])
        n_rows = None
        for name, field in row_fields(self.resolution).items():
            if name not in self.file:
                raise self._fail(f"missing dataset {name!r}")
            dataset = self.file[name]
            if dataset.shape[1:] != field.shape or dataset.dtype != np.dtype(field.dtype):
                raise self._fail(f"dataset {name!r} has shape {dataset.shape} {dataset.dtype}, "
                                 f"expected (N, {', '.join(map(str, field.shape))}) {np.dtype(field.dtype)}")
            if n_rows is None:
                n_rows = dataset.shape[0]
            elif dataset.shape[0] != n_rows:
                raise self._fail(f"dataset {name!r} has {dataset.shape[0]} rows, others have {n_rows}")
        if "trajectories" not in self.file:
            raise self._fail("missing group 'trajectories'")
        group = self.file["trajectories"]
        missing = [name for name in TRAJECTORY_FIELDS if name not in group]
        if missing:
            raise self._fail(f"trajectories lack {missing}")
        self.trajectories = {name: group[name][()] for name in TRAJECTORY_FIELDS}
        self.trajectories["video"] = np.array([v.decode() if isinstance(v, bytes) else v for v in self.trajectories["video"]])
        start, length = self.trajectories["start"], self.trajectories["length"]
        expected_start = np.concatenate([[0], np.cumsum(length)[:-1]]) if len(length) else length
        if np.any(length < 1) or not np.array_equal(start, expected_start) or length.sum() != n_rows:
            raise self._fail(f"trajectory table does not tile the {n_rows} rows")
        self.n_frames = int(n_rows)

    # ---------------------------------------------------------------------------------- metadata
    @property
    def task(self) -> str:
        return str(self.file.attrs["task"])

    @property
    def split(self) -> str:
        return str(self.file.attrs["split"])

    @property
    def dataset_id(self) -> str:
        return str(self.file.attrs["dataset_id"])

    @property
    def config(self) -> dict[str, Any]:
        """The config sections that made this file (seed, render, distractors, rollouts)."""
        return json.loads(self.file.attrs["config"])

    def recorded_config(self) -> Config:
        """``config`` checked into a ``Config`` (other sections at their defaults): what an env
        like the one that made the data is built from (``promptlam.envs.factory.make_env``)."""
        return validate_config(self.config, f"{self.path} (recorded config)")

    @property
    def n_trajectories(self) -> int:
        return len(self.trajectories["start"])

    # -------------------------------------------------------------------------------------- data
    def __getitem__(self, name: str) -> CheckedDataset:
        """A per-frame dataset, e.g. ``f["frames/distracted"][rows]`` (read from disk on access)."""
        return self.dataset(name)

    def rows(self, trajectory: int) -> slice:
        """The row slice of trajectory ``trajectory``."""
        start = int(self.trajectories["start"][trajectory])
        return slice(start, start + int(self.trajectories["length"][trajectory]))

    def trajectory(self, index: int, fields: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        """All (or the named) per-frame fields of one trajectory, read into memory."""
        names = fields or tuple(row_fields(self.resolution))
        rows = self.rows(index)
        return {name: self[name][rows] for name in names}
