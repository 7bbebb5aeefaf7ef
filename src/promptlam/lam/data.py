"""Transitions for latent action models (and BC): sampled by seed and step, gathered from rows
held in memory.

Where the rows live (``TransitionData.place``, config ``lam.data_placement``):
  - `device`: every row of the chosen trajectories on the training device (a GPU): a batch is
    one index operation there;
  - `ram`: every row in RAM (pinned when training on a GPU, so the batch's copy does not block);
  - `stream`: blocks of ``lam.shuffle_buffer`` whole trajectories, read in turn (the next block is
    read by a thread while the current one trains), for data larger than memory.
`auto` picks the first that fits. Rows are read whole trajectories at a time (big contiguous
HDF5 reads), never one sample at a time.

A frame stack is uint8 ``[B, S, H, W, 3]``: the S frames as the rollout file stores them (the
gather's output, no transpose); ``LatentActionModel.observe`` turns it into the channels-last
float input of the convolutions in the one copy that converts to float anyway.

Sampling is stateless: the transitions of step s come from a generator seeded by
(seed, stream, s, process), so a resumed run draws exactly the batches an uninterrupted one
would. With ``shuffle_buffer`` set, step s draws from the block of trajectories it falls in
(``BlockSchedule``); the placement never changes which transitions a step draws.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from promptlam.config import DATA_PLACEMENTS
from promptlam.data.rollout_file import RolloutFile
from promptlam.data.target_file import RunningMoments, TargetFile
from promptlam.errors import UserError
from promptlam.seeding import rng

ROWS_PER_READ = 2048
"""Rows of one HDF5 read while loading (a few hundred MB of 128 px frames at most)."""

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
    ``target_frames`` those a pixel forward model predicts (default: ``frames``). ``next_frames``
    is how many frames of the stack at t+1 a batch carries as `next_obs` (0: none; the pixel head
    reads 1, LAOM's EMA head the whole stack). Vector targets (``TaskFiles.target``) are
    standardised per dimension with statistics combined over all tasks: of target(t+1) for the
    `absolute` and `conditioned` formulations, of target(t+1) - target(t) for `delta` (each
    dimension's std at least ``std_floor`` times the mean std over dimensions). ``shuffle_buffer``
    (trajectories) makes steps draw from blocks of that many trajectories (``BlockSchedule``);
    None draws every step from all of them.
    """

    def __init__(self, tasks: list[TaskFiles], frame_stack: int, max_offset: int, frames: str = "distracted",
                 target_frames: str | None = None, trajectories: list[np.ndarray] | None = None,
                 formulation: str = "absolute", std_floor: float = 0.0, next_frames: int = 0,
                 shuffle_buffer: int | None = None) -> None:
        self.tasks, self.stack, self.max_offset = tasks, frame_stack, max_offset
        self.frames, self.target_frames = f"frames/{frames}", f"frames/{target_frames or frames}"
        self.formulation, self.next_frames = formulation, next_frames
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
                        self.target_dtype = target.targets.dtype
        self.starts, self.lengths = np.concatenate(starts).astype(np.int64), np.concatenate(lengths).astype(np.int64)
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
        n = len(self.lengths)
        self.schedule = BlockSchedule(self.lengths, shuffle_buffer) if shuffle_buffer and shuffle_buffer < n else None
        self.placement: str | None = None
        self._resident: ResidentRows | None = None
        self._window: ResidentRows | None = None  # the rows of the last `batch` call (unplaced)
        self._blocks: dict[int, ResidentRows | Future] = {}
        self._buffers: tuple[dict, dict] = ({}, {})  # step_batch's outputs, alternating
        self._reader: ThreadPoolExecutor | None = None
        self._handles: dict[int, tuple[RolloutFile, TargetFile | None]] = {}
        self._datasets: dict[tuple[int, str], object] = {}

    def __len__(self) -> int:
        return int(self.transitions[-1])

    # ------------------------------------------------------------------------------- files
    def _files(self, index: int) -> tuple[RolloutFile, TargetFile | None]:
        # Opened lazily in whichever process or thread first reads.
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
            rollouts, target = self._files(index)
            self._datasets[key] = target.targets if name == "targets" else rollouts[name]
        return self._datasets[key]

    # ---------------------------------------------------------------------------- sampling
    def sample(self, seed: int, step: int, batch_size: int, process: int = 0,
               stream: str = "lam-batch") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(trajectory, t, k) of the transitions of ``step``: a function of its arguments only
        (``stream`` keeps the batches of different stages apart), uniform over the transitions
        of every trajectory, or of the step's block when there is a ``shuffle_buffer``."""
        generator = rng(seed, stream, step, process)
        if self.schedule is None:
            pool, transitions = None, self.transitions
        else:
            pool = self.schedule.block(seed, step, batch_size)
            transitions = np.concatenate([[0], np.cumsum(self.lengths[pool] - 1)])
        flat = generator.integers(int(transitions[-1]), size=batch_size)
        trajectory = np.searchsorted(transitions, flat, side="right") - 1
        t = flat - transitions[trajectory]
        if pool is not None:
            trajectory = pool[trajectory]
        room = self.lengths[trajectory] - 1 - t  # frames after t in the trajectory (>= 1)
        k = 1 + np.floor(generator.random(batch_size) * np.minimum(room, self.max_offset)).astype(int)
        return trajectory, t, k

    def transition_index(self, trajectory: np.ndarray, t: np.ndarray) -> np.ndarray:
        """The flat index of transition t -> t+1 of each trajectory (0 .. len(self) - 1)."""
        return self.transitions[trajectory] + t

    # --------------------------------------------------------------------------- placement
    def nbytes(self, trajectories: np.ndarray | None = None) -> int:
        """Bytes that the rows of ``trajectories`` (default: all) take in memory."""
        rows = int(self.lengths.sum() if trajectories is None else self.lengths[trajectories].sum())
        return rows * ResidentRows.row_bytes(self)

    def place(self, placement: str, device: torch.device, memory_fraction: float, log: bool = True) -> str:
        """Decide where the rows live (``DATA_PLACEMENTS``), load them when resident, and say so in
        one line. Returns the placement chosen."""
        if placement not in DATA_PLACEMENTS:
            raise UserError(f"lam.data_placement: {placement!r}; expected one of {', '.join(DATA_PLACEMENTS)}")
        total = self.nbytes()
        on_gpu = device.type == "cuda"
        device_free = free_memory(device) if on_gpu else None
        ram_free = free_memory(torch.device("cpu"))
        largest = self.schedule.largest_block_bytes(self) if self.schedule is not None else total
        if placement == "auto":
            if on_gpu and total <= memory_fraction * device_free:
                placement = "device"
            elif total <= memory_fraction * ram_free:
                placement = "ram"
            elif self.schedule is not None:
                placement = "stream"
            else:
                per_trajectory = max(1.0, total / len(self.lengths))
                most = int(memory_fraction * max(ram_free, device_free or 0) / 2 / per_trajectory)
                raise UserError(
                    f"lam.shuffle_buffer: the training rows take {gigabytes(total)}, more than "
                    f"lam.resident_memory_fraction {memory_fraction} of the free memory (RAM {gigabytes(ram_free)}"
                    + (f", {device} {gigabytes(device_free)}" if on_gpu else "")
                    + f"); set lam.shuffle_buffer (trajectories streamed at a time; at most about {most} fit) "
                    "to stream them")
        if placement == "device" and not on_gpu:
            placement = "ram"  # training on the CPU: RAM is the device
        if placement == "stream" and self.schedule is None:
            raise UserError("lam.data_placement: `stream` reads blocks of lam.shuffle_buffer trajectories; "
                            f"set lam.shuffle_buffer below the {len(self.lengths)} trajectories of the run")
        self.placement, self.device = placement, device
        where = {"device": str(device), "ram": "RAM" + (" (pinned)" if on_gpu else ""),
                 "stream": f"blocks of {self.schedule.size if self.schedule else 0} trajectories "
                           f"({gigabytes(largest)} at most, two at a time)"}[placement]
        if log:
            free = f"{device} {gigabytes(device_free)}, " if on_gpu else ""
            print(f"promptlam: training rows {gigabytes(total)} ({int(self.lengths.sum())} frames of "
                  f"{len(self.lengths)} trajectories) held in {where}; free: {free}RAM {gigabytes(ram_free)} "
                  f"(lam.data_placement, lam.resident_memory_fraction)", file=sys.stderr, flush=True)
        if placement in ("device", "ram"):
            self._resident = ResidentRows(self, np.arange(len(self.lengths)),
                                          device if placement == "device" else torch.device("cpu"),
                                          pin=on_gpu and placement == "ram", progress=log)
        return placement

    # ----------------------------------------------------------------------------- batches
    def step_batch(self, seed: int, step: int, batch_size: int, process: int = 0,
                   stream: str = "lam-batch") -> dict[str, torch.Tensor]:
        """The batch of training ``step`` on the placed device (``place`` first). On the CPU its
        frame tensors are buffers that the batch of step + 2 overwrites: a fresh 100 MB tensor
        per batch costs more in page faults than the gather itself (bench/loader.py)."""
        if self.placement is None:
            raise RuntimeError("TransitionData.place must choose where the rows live before training")
        trajectory, t, k = self.sample(seed, step, batch_size, process, stream)
        if self.placement == "stream":
            rows = self._block_rows(seed, step, batch_size)
        else:
            rows = self._resident
        return rows.gather(trajectory, t, k, self.device, self._buffers[step % 2])

    def batches(self, seed: int, first_step: int, steps: int, batch_size: int, process: int = 0,
                stream: str = "lam-batch") -> Iterator[dict[str, torch.Tensor]]:
        """The batches of steps ``first_step .. steps - 1``."""
        for step in range(first_step, steps):
            yield self.step_batch(seed, step, batch_size, process, stream)

    def batch(self, trajectory: np.ndarray, t: np.ndarray, k: np.ndarray) -> dict[str, torch.Tensor]:
        """The given transitions, on the CPU: frame stacks `obs` (at t), `future` (t+k), `next_obs`
        (``next_frames`` target frames ending at t+1) and `target_obs` (the last target frame at
        t, when target frames are not `frames`), `action` (mean over [t, t+k)), `task`, `index`
        (flat transition index) and, for vector targets, `target` (the formulation's standardised
        target) and `target_now` (target(t), standardised, for `conditioned`).

        Unplaced data reads the trajectories asked for (and the ones after them, up to
        ``ROWS_PER_READ`` rows) whole and keeps them for the next call: walking through the
        transitions in order reads every row about once."""
        rows = self._resident
        if rows is None:  # unplaced, or streamed
            wanted = np.unique(trajectory)
            if self._window is None or not self._window.holds(wanted):
                self._window = ResidentRows(self, self._following(wanted), torch.device("cpu"))
            rows = self._window
        batch = rows.gather(trajectory, t, k, torch.device("cpu"))
        return batch

    def _following(self, wanted: np.ndarray) -> np.ndarray:
        """``wanted`` and the trajectories after its last, up to ROWS_PER_READ rows in all."""
        chosen, rows, index = list(wanted), int(self.lengths[wanted].sum()), int(wanted.max()) + 1
        while index < len(self.lengths) and rows + self.lengths[index] <= ROWS_PER_READ:
            chosen.append(index)
            rows += int(self.lengths[index])
            index += 1
        return np.unique(chosen)

    def _block_rows(self, seed: int, step: int, batch_size: int) -> ResidentRows:
        """The rows of the block of ``step``, with the next block being read by a thread."""
        schedule = self.schedule
        number = schedule.block_number(seed, step, batch_size)
        if self._reader is None:
            self._reader = ThreadPoolExecutor(1, thread_name_prefix="promptlam-blocks")
        for wanted in (number, number + 1):
            if wanted not in self._blocks:
                trajectories = schedule.block_trajectories(seed, wanted)
                self._blocks[wanted] = self._reader.submit(
                    ResidentRows, self, trajectories, torch.device("cpu"), self.device.type == "cuda")
        for old in [n for n in self._blocks if n < number]:
            del self._blocks[old]
        rows = self._blocks[number]
        if isinstance(rows, Future):
            rows = self._blocks[number] = rows.result()
        return rows

    def close(self) -> None:
        if self._reader is not None:
            self._reader.shutdown(wait=True)
            self._reader = None
        self._blocks.clear()
        self._resident = self._window = None
        self._datasets.clear()
        for rollouts, target in self._handles.values():
            rollouts.close()
            if target is not None:
                target.close()
        self._handles.clear()


class BlockSchedule:
    """Which trajectories each step draws from when they are streamed: every pass over the data
    walks through a fresh permutation of the trajectories (seeded by (seed, pass)) in blocks of
    ``size``; a block serves ceil(its transitions / batch size) steps, so a pass shows each
    transition about once."""

    def __init__(self, lengths: np.ndarray, size: int) -> None:
        self.lengths, self.size = lengths, size
        self.n_blocks = math.ceil(len(lengths) / size)
        self._starts: dict[tuple[int, int], list[int]] = {}  # (seed, batch) -> first step of each block
        self._passes: dict[tuple[int, int], list[np.ndarray]] = {}  # (seed, pass) -> its blocks

    def block_trajectories(self, seed: int, number: int) -> np.ndarray:
        """The trajectories of block ``number`` (counted over all passes), in file order."""
        key = (seed, number // self.n_blocks)
        if key not in self._passes:  # each step asks for its block: permute once a pass
            order = rng(seed, "lam-blocks", key[1]).permutation(len(self.lengths))
            self._passes[key] = [np.sort(block) for block in np.array_split(order, self.n_blocks)]
        return self._passes[key][number % self.n_blocks]

    def block_number(self, seed: int, step: int, batch_size: int) -> int:
        starts = self._starts.setdefault((seed, batch_size), [0])
        while starts[-1] <= step:
            block = self.block_trajectories(seed, len(starts) - 1)
            starts.append(starts[-1] + max(1, math.ceil(int((self.lengths[block] - 1).sum()) / batch_size)))
        return int(np.searchsorted(starts, step, side="right")) - 1

    def block(self, seed: int, step: int, batch_size: int) -> np.ndarray:
        return self.block_trajectories(seed, self.block_number(seed, step, batch_size))

    def largest_block_bytes(self, data: TransitionData) -> int:
        """An upper bound of one block's rows in bytes: its size times the longest trajectories."""
        longest = np.sort(self.lengths)[::-1][:math.ceil(len(self.lengths) / self.n_blocks)]
        return int(longest.sum()) * ResidentRows.row_bytes(data)


class ResidentRows:
    """Every row of some trajectories of a ``TransitionData`` as tensors (frames, the target
    frames when separate, actions, vector targets), read whole trajectories at a time; ``gather``
    builds a batch from them."""

    def __init__(self, data: TransitionData, trajectories: np.ndarray, device: torch.device,
                 pin: bool = False, progress: bool = False) -> None:
        from promptlam.io import progress_bar

        self.data, self.trajectories = data, np.asarray(trajectories)
        self.base = np.full(len(data.lengths), -1, dtype=np.int64)  # row of each trajectory's frame 0
        lengths = data.lengths[self.trajectories]
        self.base[self.trajectories] = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        total, size = int(lengths.sum()), data.frame_size
        separate = data.target_frames != data.frames

        def empty(shape, dtype):
            return torch.empty(shape, dtype=dtype, device=device, pin_memory=pin and device.type == "cpu")

        self.tensors = {"frames": empty((total, size, size, 3), torch.uint8),
                        "action": empty((total, 4), torch.float32)}
        if separate:
            self.tensors["target_frames"] = empty((total, size, size, 3), torch.uint8)
        if data.has_target:
            self.tensors["targets"] = empty((total, data.target_dim), torch.from_numpy(
                np.zeros(0, data.target_dtype)).dtype)
        datasets = {"frames": data.frames, "action": "action", "target_frames": data.target_frames,
                    "targets": "targets"}
        bar = progress_bar(total, "reading training rows", "frame", progress and total > 10 * ROWS_PER_READ)
        for owner, first, rows, cursor in self._reads():
            for name, tensor in self.tensors.items():
                values = data._dataset(owner, datasets[name])[first: first + rows]
                tensor[cursor: cursor + rows].copy_(torch.from_numpy(values))
            bar.update(rows)
        bar.close()

    def _reads(self) -> Iterator[tuple[int, int, int, int]]:
        """(task, first file row, rows, first row here) of each read: runs of trajectories that
        lie back to back in one file, at most ROWS_PER_READ rows a read."""
        data, cursor, index = self.data, 0, 0
        chosen = self.trajectories
        while index < len(chosen):
            trajectory = chosen[index]
            owner, first = int(data.owners[trajectory]), int(data.starts[trajectory])
            rows = int(data.lengths[trajectory])
            index += 1
            while (index < len(chosen) and data.owners[chosen[index]] == owner
                   and data.starts[chosen[index]] == first + rows
                   and rows + data.lengths[chosen[index]] <= ROWS_PER_READ):
                rows += int(data.lengths[chosen[index]])
                index += 1
            for offset in range(0, rows, ROWS_PER_READ):
                piece = min(ROWS_PER_READ, rows - offset)
                yield owner, first + offset, piece, cursor
                cursor += piece

    @staticmethod
    def row_bytes(data: TransitionData) -> int:
        frame = data.frame_size ** 2 * 3
        size = frame * (2 if data.target_frames != data.frames else 1) + 16
        if data.has_target:
            size += data.target_dim * np.dtype(data.target_dtype).itemsize
        return size

    def holds(self, trajectories: np.ndarray) -> bool:
        return bool((self.base[trajectories] >= 0).all())

    def gather(self, trajectory: np.ndarray, t: np.ndarray, k: np.ndarray, device: torch.device,
               buffers: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """The batch of ``TransitionData.batch`` for these transitions, on ``device``: each frame
        tensor is read by one index operation where the rows live, then copied (without blocking
        when the rows are pinned). ``buffers``: where to gather CPU frames to (reused when the
        shapes match)."""
        data, stack = self.data, self.data.stack
        base = self.base[trajectory][:, None]
        t, k = np.asarray(t)[:, None], np.asarray(k)[:, None]
        within = np.arange(1 - stack, 1)  # a stack ends at its frame; padded with frame 0
        separate = "target_frames" in self.tensors
        rows = [base + np.maximum(t + within, 0), base + np.maximum(t + k + within, 0)]
        next_rows = base + np.maximum(t + 1 + within[stack - data.next_frames:], 0)  # [B, next_frames]
        if not separate:
            rows.append(next_rows)
        frames = self._take("frames", np.concatenate(rows, axis=1), device, buffers)
        batch = {"obs": frames[:, :stack], "future": frames[:, stack: 2 * stack]}
        if data.next_frames and not separate:
            batch["next_obs"] = frames[:, 2 * stack:]
        if separate:
            target_rows = np.concatenate([base + t, next_rows], axis=1)
            target_frames = self._take("target_frames", target_rows, device, buffers)
            batch["target_obs"], batch["next_obs"] = target_frames[:, :1], target_frames[:, 1:]
        # The mean action over [t, t+k): summed in order, as numpy's mean of the rows would.
        offsets = np.arange(data.max_offset)[None]
        window = self._take("action", base + t + np.minimum(offsets, k - 1), device, buffers)
        inside = torch.from_numpy(offsets < k).to(window.device, non_blocking=True)[..., None]
        window = window * inside
        total = window[:, 0]
        for offset in range(1, data.max_offset):
            total = total + window[:, offset]
        batch["action"] = total / torch.from_numpy(k).to(window.device, non_blocking=True)
        batch["task"] = torch.from_numpy(data.owners[trajectory].astype(np.int64)).to(device, non_blocking=True)
        batch["index"] = torch.from_numpy(data.transition_index(trajectory, t[:, 0]).astype(np.int64)).to(
            device, non_blocking=True)
        if "targets" in self.tensors:
            pair = self._take("targets", np.concatenate([base + t, base + t + 1], axis=1), device, buffers).float()
            value = pair[:, 1] - pair[:, 0] if data.formulation == "delta" else pair[:, 1]
            mean, std = data.target_mean.to(value.device), data.target_std.to(value.device)
            batch["target"] = (value - mean) / std
            if data.formulation == "conditioned":
                batch["target_now"] = (pair[:, 0] - mean) / std
        return batch

    def _take(self, name: str, rows: np.ndarray, device: torch.device,
              buffers: dict[str, torch.Tensor] | None) -> torch.Tensor:
        """``tensor[rows]`` ([B, n] rows) on ``device``: one index_select where the tensor lives
        (into ``buffers[name]`` for CPU frames); from pinned RAM into a pinned buffer, copied
        without blocking."""
        source = self.tensors[name]
        index = torch.from_numpy(rows.reshape(-1)).to(source.device, non_blocking=True)
        shape = (*rows.shape, *source.shape[1:])
        if buffers is not None and source.device.type == "cpu" == device.type and source.dtype == torch.uint8:
            out = buffers.get(name)
            if out is None or out.shape != (index.numel(), *source.shape[1:]):
                out = buffers[name] = torch.empty((index.numel(), *source.shape[1:]), dtype=source.dtype)
            return torch.index_select(source, 0, index, out=out).view(shape)
        if source.device == device or not source.is_pinned():
            return torch.index_select(source, 0, index).view(shape).to(device)
        out = torch.empty((index.numel(), *source.shape[1:]), dtype=source.dtype, pin_memory=True)
        torch.index_select(source, 0, index, out=out)
        return out.view(shape).to(device, non_blocking=True)


def free_memory(device: torch.device) -> int:
    """Bytes free for resident rows: a GPU's free memory, or the RAM this process may still use
    (the machine's available RAM, within a cgroup's limit such as a SLURM job's)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    import psutil

    available = int(psutil.virtual_memory().available)
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            available = min(available, int(limit) - used)
    except (OSError, ValueError):
        pass
    return max(available, 0)


def gigabytes(size: int | None) -> str:
    """Bytes for a log line: GB, or MB below one GB."""
    size = size or 0
    return f"{size / 1e9:.2f} GB" if size >= 1e9 else f"{size / 1e6:.1f} MB"


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
