"""The target file: what the forward model predicts, one entry per rollout frame, index for index.

``data/targets/{target}/{task}.h5`` holds dataset ``targets`` [N, ...] aligned with the rows of
the rollout file it was computed from: float16 vectors for model and state targets, or an HDF5
external link to the rollout file's frames for `pixels` and `clean` (no copy). Beside it: the
per-dimension (per-channel for frames) ``mean`` and ``std`` over the file's frames, and the raw
``count``/``sum``/``sum_sq`` so that statistics over several tasks combine exactly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from promptlam.data.h5file import CHECKSUMS, AtomicH5Writer, CheckedH5File
from promptlam.data.rollout_file import RolloutFile
from promptlam.io import temporary_path

FORMAT = "promptlam.targets"
FORMAT_VERSION = 1


class RunningMoments:
    """Count, sum and sum of squares (float64) over frames, reduced to the stats' shape."""

    def __init__(self, reduce_axes: tuple[int, ...] = ()) -> None:
        self.reduce_axes = reduce_axes
        self.count = 0
        self.sum: np.ndarray | float = 0.0
        self.sum_sq: np.ndarray | float = 0.0

    def update(self, values: np.ndarray) -> None:
        values = values.astype(np.float64)
        axes = (0, *(axis + 1 for axis in self.reduce_axes))
        self.count += int(np.prod([values.shape[a] for a in axes]))
        self.sum = self.sum + values.sum(axis=axes)
        self.sum_sq = self.sum_sq + np.square(values).sum(axis=axes)

    def merge(self, other: RunningMoments) -> None:
        self.count += other.count
        self.sum = self.sum + other.sum
        self.sum_sq = self.sum_sq + other.sum_sq

    def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        mean = np.asarray(self.sum) / max(self.count, 1)
        variance = np.maximum(np.asarray(self.sum_sq) / max(self.count, 1) - mean**2, 0.0)
        return mean, np.sqrt(variance)

    def write(self, file: h5py.File) -> None:
        mean, std = self.mean_std()
        file["mean"], file["std"] = mean.astype(np.float32), std.astype(np.float32)
        file["count"], file["sum"], file["sum_sq"] = self.count, np.asarray(self.sum), np.asarray(self.sum_sq)


class TargetWriter(AtomicH5Writer):
    """Writes a target's rows; the file appears under ``path`` only when every row is written."""

    def __init__(self, path: str | Path, n_frames: int, frame_shape: tuple[int, ...], attrs: dict[str, Any]) -> None:
        super().__init__(path)
        self.n_frames, self.frame_shape, self.attrs = n_frames, frame_shape, attrs
        self.moments = RunningMoments()
        self.written = 0

    def _create(self) -> None:
        chunk = max(1, min(self.n_frames, 256))
        self.file.create_dataset("targets", shape=(self.n_frames, *self.frame_shape), dtype=np.float16,
                                 chunks=(chunk, *self.frame_shape), **CHECKSUMS)

    def write(self, start: int, values: np.ndarray) -> None:
        stored = values.astype(np.float16)
        self.file["targets"][start:start + len(stored)] = stored
        self.moments.update(stored)  # the statistics of what a reader will see
        self.written += len(stored)

    def _finalize(self) -> None:
        if self.written != self.n_frames:
            raise RuntimeError(f"{self.path}: wrote {self.written} of {self.n_frames} rows")
        self.moments.write(self.file)
        _write_attrs(self.file, self.attrs)


def _write_attrs(file: h5py.File, attrs: dict[str, Any]) -> None:
    for key, value in attrs.items():
        file.attrs[key] = json.dumps(value) if isinstance(value, (dict, list)) else value
    file.attrs["format"], file.attrs["format_version"] = FORMAT, FORMAT_VERSION
    file.attrs["complete"] = True  # last: readers refuse a file without it


def write_frame_link(path: str | Path, rollouts: RolloutFile, dataset: str, attrs: dict[str, Any]) -> None:
    """A target file whose ``targets`` is an external link to ``dataset`` of the rollout file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    moments = RunningMoments(reduce_axes=(0, 1))  # per colour channel
    frames = rollouts[dataset]
    for start in range(0, rollouts.n_frames, 512):
        moments.update(frames[start:start + 512])
    tmp = temporary_path(path)
    try:
        with h5py.File(tmp, "w") as file:
            # Relative to this file's folder, so the pair can move together.
            file["targets"] = h5py.ExternalLink(os.path.relpath(rollouts.path, path.parent), f"/{dataset}")
            moments.write(file)
            _write_attrs(file, attrs)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class TargetFile(CheckedH5File):
    """A target file, checked on open, and against its rollout file when one is given."""

    FORMAT, FORMAT_VERSION, DESCRIPTION = FORMAT, FORMAT_VERSION, "target file"

    def __init__(self, path: str | Path, rollouts: RolloutFile | None = None) -> None:
        self._rollouts = rollouts
        super().__init__(path)  # external links resolve relative to this file, whatever the cwd

    def _check(self) -> None:
        attrs, rollouts = self.file.attrs, self._rollouts
        try:
            self.targets = self.dataset("targets")
        except KeyError:
            raise self._fail("its linked frames are missing (was the rollout file moved?)") from None
        if self.targets.shape[0] != int(attrs["n_frames"]):
            raise self._fail(f"has {self.targets.shape[0]} rows, its record says {attrs['n_frames']}")
        if rollouts is not None:
            if attrs["rollouts_dataset_id"] != rollouts.dataset_id:
                raise self._fail(
                    f"computed from dataset {attrs['rollouts_dataset_id']}, but {rollouts.path} is "
                    f"dataset {rollouts.dataset_id} (rollouts_dataset_id differs): recompute the target")
            if self.targets.shape[0] != rollouts.n_frames:
                raise self._fail(f"{self.targets.shape[0]} frames, but {rollouts.path} has "
                                 f"{rollouts.n_frames} (n_frames differs): recompute the target")

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self.file.attrs)

    @property
    def kind(self) -> str:
        return str(self.file.attrs["kind"])

    @property
    def frame_shape(self) -> tuple[int, ...]:
        return tuple(self.targets.shape[1:])

    def moments(self) -> RunningMoments:
        """The raw statistics, to combine with other tasks' (``RunningMoments.merge``)."""
        moments = RunningMoments()
        moments.count = int(self.file["count"][()])
        moments.sum, moments.sum_sq = self.file["sum"][()], self.file["sum_sq"][()]
        return moments
