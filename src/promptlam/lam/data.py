"""Transitions for latent action models, read from the rollout and target files on demand.

Nothing is loaded whole: a batch reads, for each sampled transition, one short window of rows
(the frame stacks of o_t, o_{t+1} and o_{t+k}) straight from HDF5, so memory does not grow with
the dataset. Sampling is stateless: the transitions of step s come from a generator seeded by
(seed, s, process), so a resumed run draws exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from promptlam.data.rollout_file import RolloutFile
from promptlam.data.target_file import RunningMoments, TargetFile
from promptlam.errors import UserError
from promptlam.seeding import rng


@dataclass(frozen=True)
class TaskFiles:
    """The files of one task: its train rollouts and, for vector targets, its target file."""

    rollouts: Path
    target: Path | None = None


def split_trajectories(n_trajectories: int, heldout_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Trajectory indices used to fit probes and those held out (the last ones of the file)."""
    held = max(1, round(n_trajectories * heldout_fraction)) if n_trajectories > 1 else 0
    return np.arange(n_trajectories - held), np.arange(n_trajectories - held, n_trajectories)


def screening_subsets(files: list[TaskFiles], total: int | None, heldout_fraction: float) -> list[np.ndarray] | None:
    """The trajectories a screening run on ``total`` train trajectories trains on: the first of
    each task, ``total`` split evenly over the tasks (the first tasks one more), all outside the
    probes' held-out trajectories; None (all trajectories) when ``total`` is None."""
    if total is None:
        return None
    if total < len(files):
        raise UserError(f"screening: {total} trajectories cannot give each of the {len(files)} tasks one")
    subsets = []
    for index, task_files in enumerate(files):
        count = total // len(files) + (index < total % len(files))
        with RolloutFile(task_files.rollouts) as rollouts:
            fit, _ = split_trajectories(rollouts.n_trajectories, heldout_fraction)
        if count > len(fit):
            raise UserError(f"screening: {total} trajectories take {count} of {task_files.rollouts}, which has "
                            f"{len(fit)} outside the probes' held-out ones")
        subsets.append(np.arange(count))
    return subsets


class TransitionData:
    """Samples (o_t, o_{t+k}, what the forward model predicts, mean action over [t, t+k)) batches.

    ``frames`` names the frames the models see (`distracted`, or `clean` for the clean methods);
    ``target_frames`` those a pixel forward model predicts (default: ``frames``). Vector targets
    (``TaskFiles.target``) are standardised per dimension with statistics combined over all tasks:
    of target(t+1) for the `absolute` and `conditioned` formulations, of target(t+1) - target(t)
    for `delta` (each dimension's std at least ``std_floor`` times the mean std over dimensions).
    """

    def __init__(self, tasks: list[TaskFiles], frame_stack: int, max_offset: int, frames: str = "distracted",
                 target_frames: str | None = None, trajectories: list[np.ndarray] | None = None,
                 formulation: str = "absolute", std_floor: float = 0.0) -> None:
        self.tasks, self.stack, self.max_offset = tasks, frame_stack, max_offset
        self.frames, self.target_frames = f"frames/{frames}", f"frames/{target_frames or frames}"
        self.formulation = formulation
        starts, lengths, owners = [], [], []
        moments = RunningMoments()
        self.frame_size = None
        for index, files in enumerate(tasks):
            with RolloutFile(files.rollouts) as rollouts:
                chosen = np.arange(rollouts.n_trajectories) if trajectories is None else trajectories[index]
                starts.append(rollouts.trajectories["start"][chosen])
                lengths.append(rollouts.trajectories["length"][chosen])
                owners.append(np.full(len(chosen), index))
                self.frame_size = rollouts.resolution
                if files.target is not None:
                    with TargetFile(files.target, rollouts) as target:
                        if formulation == "delta":
                            moments.merge(delta_moments(target, rollouts))
                        else:
                            moments.merge(target.moments())
                        self.target_dim = target.frame_shape[0]
        self.starts, self.lengths = np.concatenate(starts), np.concatenate(lengths)
        self.owners = np.concatenate(owners)
        shortest = int(self.lengths.min())
        if max_offset >= shortest:
            raise UserError(f"lam.max_offset: {max_offset} is not shorter than the shortest trajectory "
                            f"({shortest} frames): lower it or collect longer episodes")
        # Every transition t -> t+1 inside a trajectory can be sampled.
        self.transitions = np.concatenate([[0], np.cumsum(self.lengths - 1)])
        self.has_target = any(files.target is not None for files in tasks)
        if self.has_target:
            mean, std = moments.mean_std()
            floor = max(std_floor * float(std.mean()), 1e-6)
            self.target_mean = torch.as_tensor(mean, dtype=torch.float32)
            self.target_std = torch.as_tensor(np.maximum(std, floor), dtype=torch.float32)
        self._handles: dict[int, tuple[RolloutFile, TargetFile | None]] = {}
        self._datasets: dict[tuple[int, str], object] = {}

    def __len__(self) -> int:
        return int(self.transitions[-1])

    def _files(self, index: int) -> tuple[RolloutFile, TargetFile | None]:
        # Opened lazily in whichever process reads (HDF5 handles do not survive a fork).
        if index not in self._handles:
            files = self.tasks[index]
            rollouts = RolloutFile(files.rollouts)
            target = TargetFile(files.target) if files.target is not None else None
            self._handles[index] = (rollouts, target)
        return self._handles[index]

    def _dataset(self, index: int, name: str):
        # h5py looks a dataset up anew on every access by name: keep the handles.
        key = (index, name)
        if key not in self._datasets:
            self._datasets[key] = self._files(index)[0][name]
        return self._datasets[key]

    def sample(self, seed: int, step: int, batch_size: int, process: int = 0,
               stream: str = "lam-batch") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(trajectory, t, k) of the transitions of ``step``: a function of its arguments only
        (``stream`` keeps the batches of different stages apart)."""
        generator = rng(seed, stream, step, process)
        flat = generator.integers(len(self), size=batch_size)
        trajectory = np.searchsorted(self.transitions, flat, side="right") - 1
        t = flat - self.transitions[trajectory]
        room = self.lengths[trajectory] - 1 - t  # frames after t in the trajectory (>= 1)
        k = 1 + np.floor(generator.random(batch_size) * np.minimum(room, self.max_offset)).astype(int)
        return trajectory, t, k

    def transition_index(self, trajectory: np.ndarray, t: np.ndarray) -> np.ndarray:
        """The flat index of transition t -> t+1 of each trajectory (0 .. len(self) - 1)."""
        return self.transitions[trajectory] + t

    def _stack(self, window: np.ndarray, first: int, last: int) -> np.ndarray:
        """Frames ``last - stack + 1 .. last`` of a window starting at ``first``, padded at the start."""
        rows = np.maximum(np.arange(last - self.stack + 1, last + 1), 0) - first
        return window[rows].transpose(0, 3, 1, 2).reshape(-1, *window.shape[1:3])

    def batch(self, trajectory: np.ndarray, t: np.ndarray, k: np.ndarray) -> dict[str, torch.Tensor]:
        """Read the sampled transitions: frame stacks `obs` (at t), `future` (t+k), `next_obs` (the
        target frames at t+1) and `target_obs` (the target frames at t, when they are not `obs`),
        `action` (mean over [t, t+k)), `task`, `index` (flat transition index) and, for vector
        targets, `target` (the formulation's standardised target) and `target_now` (target(t),
        standardised, for `conditioned`)."""
        obs, future, next_obs, target_obs, actions, targets, now = [], [], [], [], [], [], []
        separate_target_frames = self.target_frames != self.frames
        for trajectory_index, step, offset in zip(trajectory, t, k):
            owner = int(self.owners[trajectory_index])
            target = self._files(owner)[1]
            start = int(self.starts[trajectory_index])
            first = max(0, step - self.stack + 1)
            window = self._dataset(owner, self.frames)[start + first: start + step + offset + 1]
            obs.append(self._stack(window, first, step))
            future.append(self._stack(window, first, step + offset))
            if separate_target_frames:
                window = self._dataset(owner, self.target_frames)[start + first: start + step + 2]
                target_obs.append(self._stack(window, first, step))
            next_obs.append(self._stack(window, first, step + 1))
            actions.append(self._dataset(owner, "action")[start + step: start + step + offset].mean(axis=0))
            if target is not None:
                pair = target.targets[start + step: start + step + 2].astype(np.float32)
                targets.append(pair[1] - pair[0] if self.formulation == "delta" else pair[1])
                now.append(pair[0])
        batch = {
            "obs": torch.from_numpy(np.stack(obs)), "future": torch.from_numpy(np.stack(future)),
            "next_obs": torch.from_numpy(np.stack(next_obs)),
            "action": torch.from_numpy(np.stack(actions)).float(),
            "task": torch.from_numpy(self.owners[trajectory].astype(np.int64)),
            "index": torch.from_numpy(self.transition_index(trajectory, t).astype(np.int64)),
        }
        if target_obs:
            batch["target_obs"] = torch.from_numpy(np.stack(target_obs))
        if targets:
            batch["target"] = (torch.from_numpy(np.stack(targets)) - self.target_mean) / self.target_std
            if self.formulation == "conditioned":
                batch["target_now"] = (torch.from_numpy(np.stack(now)) - self.target_mean) / self.target_std
        return batch

    def close(self) -> None:
        self._datasets.clear()
        for rollouts, target in self._handles.values():
            rollouts.close()
            if target is not None:
                target.close()
        self._handles.clear()


def delta_moments(target: TargetFile, rollouts: RolloutFile, rows_per_read: int = 4096) -> RunningMoments:
    """Statistics of target(t+1) - target(t) over every transition inside a trajectory of the file,
    read a group of whole trajectories at a time."""
    moments = RunningMoments()
    table = rollouts.trajectories
    starts, lengths = table["start"][()], table["length"][()]
    index = 0
    while index < len(starts):
        last = index
        while last + 1 < len(starts) and starts[last + 1] + lengths[last + 1] - starts[index] <= rows_per_read:
            last += 1
        first_row = int(starts[index])
        values = target.targets[first_row: int(starts[last] + lengths[last])].astype(np.float64)
        for start, length in zip(starts[index:last + 1], lengths[index:last + 1]):
            rows = values[int(start) - first_row: int(start) - first_row + int(length)]
            moments.update(np.diff(rows, axis=0))
        index = last + 1
    return moments


class StepBatches(torch.utils.data.Dataset):
    """Item ``s`` = the batch of training step ``s`` (so a loader worker can read ahead)."""

    def __init__(self, data: TransitionData, seed: int, first_step: int, steps: int, batch_size: int,
                 process: int = 0, stream: str = "lam-batch") -> None:
        self.data, self.seed, self.first_step, self.steps = data, seed, first_step, steps
        self.batch_size, self.process, self.stream = batch_size, process, stream

    def __len__(self) -> int:
        return self.steps - self.first_step

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        step = self.first_step + index
        return self.data.batch(*self.data.sample(self.seed, step, self.batch_size, self.process, self.stream))
