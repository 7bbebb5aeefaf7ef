"""Labelled subsets: the few trajectories per task whose true actions a decoder may use.

Subsets are drawn from the (unlabelled) train split as prefixes of one seeded permutation, so a
budget of 4 contains the budget of 2. A subset file names its trajectories and carries their
actions and states; frames stay in the rollout file it points to (checked by ``dataset_id``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from promptlam.data.h5file import CheckedH5File, DataFileError
from promptlam.data.rollout_file import RolloutFile
from promptlam.io import atomic_output
from promptlam.provenance import provenance
from promptlam.seeding import rng

FORMAT = "promptlam.labelled"
FORMAT_VERSION = 1
COPIED_FIELDS = ("action", "expert_action", "action_noise", "state")


def labelled_order(seed: int, task: str, n_trajectories: int) -> np.ndarray:
    """The seeded order in which a task's train trajectories join the labelled set."""
    return rng(seed, "labelled", task).permutation(n_trajectories)


def write_labelled_subset(source: str | Path, budget: int, seed: int, out: str | Path) -> np.ndarray:
    """Write the ``budget``-trajectory subset of ``source``; returns the trajectory indices."""
    with RolloutFile(source) as rollouts:
        if rollouts.split != "train":
            raise DataFileError(f"{source}: labelled subsets come from the train split, not {rollouts.split!r}")
        if budget < 1 or budget > rollouts.n_trajectories:
            raise DataFileError(
                f"{source}: a labelled budget of {budget} trajectories needs 1..{rollouts.n_trajectories} "
                "(rollouts.labelled_budgets must not exceed rollouts.train_trajectories)"
            )
        chosen = labelled_order(seed, rollouts.task, rollouts.n_trajectories)[:budget]
        rows = [rollouts.rows(i) for i in chosen]
        with atomic_output(out) as tmp, h5py.File(tmp, "w") as f:
            f.attrs.update({
                "format": FORMAT, "format_version": FORMAT_VERSION, "task": rollouts.task,
                "budget": budget, "seed": seed, "source": str(source),
                "source_dataset_id": rollouts.dataset_id, "provenance": json.dumps(provenance()),
            })
            f["trajectories"] = chosen.astype(np.int64)
            f["episode_seed"] = rollouts.trajectories["seed"][chosen]
            f["length"] = rollouts.trajectories["length"][chosen]
            f["rows"] = np.concatenate([np.arange(r.start, r.stop) for r in rows]).astype(np.int64)
            for name in COPIED_FIELDS:
                f[name] = np.concatenate([rollouts[name][r] for r in rows])
            f.attrs["complete"] = True
    return chosen


class LabelledSubset(CheckedH5File):
    """A labelled subset file (read whole: it is small), checked against the rollout file it was
    drawn from when one is given."""

    FORMAT, FORMAT_VERSION, DESCRIPTION = FORMAT, FORMAT_VERSION, "labelled subset"
    DATASETS = ("trajectories", "episode_seed", "length", "rows", *COPIED_FIELDS)

    def __init__(self, path: str | Path, rollouts: RolloutFile | None = None) -> None:
        self._rollouts = rollouts
        super().__init__(path)
        self.close()

    def _check(self) -> None:
        missing = [name for name in self.DATASETS if name not in self.file]
        if missing:
            raise self._fail(f"missing datasets {missing}")
        self.attrs: dict[str, Any] = dict(self.file.attrs)
        self.data = {name: self.file[name][()] for name in self.DATASETS}
        rollouts = self._rollouts
        if rollouts is not None and rollouts.dataset_id != self.attrs["source_dataset_id"]:
            raise self._fail(f"drawn from dataset {self.attrs['source_dataset_id']}, but {rollouts.path} "
                             f"is dataset {rollouts.dataset_id}: rebuild the labelled subsets")

    @property
    def trajectories(self) -> np.ndarray:
        return self.data["trajectories"]
