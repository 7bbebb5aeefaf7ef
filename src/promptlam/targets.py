"""The targets stage: compute a named target for every frame of a rollout file.

Model targets (`vlm`, `embedding`) run the model over the frames in batches: a loader worker
reads and preprocesses the next batches while the model encodes the current one; on
out-of-memory the batch size halves and work goes on; under ``accelerate launch`` the frames
are sharded across processes and the shards merged. Frame targets link to the rollout file's
frames; the state target copies the state; a frame-vector target stores each frame downsampled.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from promptlam.config import Config, EmbeddingTarget, VLMTarget
from promptlam.data.h5file import DataFileError
from promptlam.data.rollout_file import RolloutFile
from promptlam.data.target_file import TargetWriter, write_frame_link
from promptlam.errors import UserError
from promptlam.io import progress_bar
from promptlam.methods import FRAME_TARGET_KINDS
from promptlam.provenance import provenance
from promptlam.tasks import check_task


def target_config(config: Config, name: str):
    """The config of target ``name``; a one-line error naming the defined targets otherwise."""
    if name not in config.targets:
        raise UserError(f"targets.{name}: no such target (defined: {', '.join(config.targets) or 'none'})")
    return config.targets[name]


class _Batches(Dataset):
    """Batch ``i`` = preprocessed frames of rows [start + i*size, ...) of the rollout file."""

    def __init__(self, rollouts: Path, start: int, stop: int, size: int, preprocess: Any, text: str) -> None:
        self.rollouts, self.start, self.stop, self.size = rollouts, start, stop, size
        self.preprocess, self.text = preprocess, text
        self._file: RolloutFile | None = None  # opened lazily: h5py handles do not cross processes

    def __len__(self) -> int:
        return -(-(self.stop - self.start) // self.size)

    def __getitem__(self, index: int):
        if self._file is None:
            self._file = RolloutFile(self.rollouts)
        first = self.start + index * self.size
        last = min(first + self.size, self.stop)
        frames = self._file["frames/distracted"][first:last]
        return first, last, self.preprocess(frames, self.text)


def _is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error).lower()


@dataclass
class EncodingStats:
    frames: int = 0
    seconds: float = 0.0
    batch_size: int = 0

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds else float("nan")


def encode_rows(encoder: Any, rollouts: Path, start: int, stop: int, text: str, write: Any,
                batch_size: int, workers: int, progress: bool = True) -> EncodingStats:
    """Encode frames [start, stop) with ``encoder``, calling ``write(row, vectors)`` per batch."""
    stats = EncodingStats(batch_size=batch_size)
    bar = progress_bar(stop - start, "encode", "frame", progress)
    began = time.perf_counter()
    position = start
    while position < stop:
        loader = DataLoader(_Batches(rollouts, position, stop, stats.batch_size, encoder.preprocess, text),
                            batch_size=None, num_workers=workers, prefetch_factor=2 if workers else None,
                            persistent_workers=False)
        try:
            for first, last, inputs in loader:
                vectors = encoder.encode(inputs)
                write(first, vectors.numpy())
                position = last
                bar.update(last - first)
                stats.frames += last - first
                bar.set_postfix(frames_per_s=f"{stats.frames / (time.perf_counter() - began):.1f}", refresh=False)
        except (RuntimeError, torch.cuda.OutOfMemoryError) as error:
            if not _is_out_of_memory(error) or stats.batch_size == 1:
                raise
            del loader
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            stats.batch_size //= 2
            print(f"out of memory: batch size halved to {stats.batch_size}", file=sys.stderr)
    bar.close()
    stats.seconds = time.perf_counter() - began
    return stats


def _shard(n_frames: int, rank: int, world: int) -> tuple[int, int]:
    per = -(-n_frames // world)
    return min(rank * per, n_frames), min((rank + 1) * per, n_frames)


def compute_target(config: Config, name: str, task: str, rollouts_path: str | Path, out: str | Path,
                   progress: bool = True, workers: int | None = None) -> EncodingStats | None:
    """Compute target ``name`` for the frames of ``rollouts_path`` (a ``task`` rollout file) into ``out``."""
    target = target_config(config, name)
    check_task(task)
    rollouts_path, out = Path(rollouts_path), Path(out)
    with RolloutFile(rollouts_path) as rollouts:
        if rollouts.task != task:
            raise DataFileError(f"{rollouts_path}: holds task {rollouts.task!r}, not {task!r}")
        attrs = {
            "target": name, "kind": target.kind, "task": task, "split": rollouts.split,
            "n_frames": rollouts.n_frames, "rollouts_dataset_id": rollouts.dataset_id,
            "rollouts": str(rollouts_path), "config": target.model_dump(mode="json"),
        }
        if target.kind in FRAME_TARGET_KINDS:
            dataset = "frames/distracted" if target.kind == "pixels" else "frames/clean"
            write_frame_link(out, rollouts, dataset, {**attrs, "provenance": provenance()})
            return None
        if target.kind == "state":
            with TargetWriter(out, rollouts.n_frames, rollouts["state"].shape[1:],
                              {**attrs, "provenance": provenance()}) as writer:
                for start in range(0, rollouts.n_frames, 4096):
                    writer.write(start, rollouts["state"][start:start + 4096])
            return None
        if target.kind == "frame_vector":
            if rollouts.resolution % target.size:
                raise UserError(f"targets.{name}.size: {target.size} does not divide the frames' "
                                f"{rollouts.resolution} pixels")
            frames = rollouts[f"frames/{target.frames}"]
            with TargetWriter(out, rollouts.n_frames, (target.size * target.size * 3,),
                              {**attrs, "provenance": provenance()}) as writer:
                for start in range(0, rollouts.n_frames, 1024):
                    writer.write(start, downsample_frames(frames[start:start + 1024], target.size))
            return None
        n_frames = rollouts.n_frames
    return _compute_model_target(target, f"targets.{name}", task, rollouts_path, out, n_frames, attrs,
                                 progress, workers)


def downsample_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """uint8 frames [N, H, W, 3] -> [N, size * size * 3] in [-1, 1]: the mean of each block of
    (H / size) x (W / size) pixels (area downsampling), flattened row by row."""
    n, height, width, channels = frames.shape
    blocks = frames.reshape(n, size, height // size, size, width // size, channels).astype(np.float32)
    return (blocks.mean(axis=(2, 4)) / 127.5 - 1.0).reshape(n, -1)


def _compute_model_target(target: VLMTarget | EmbeddingTarget, where: str, task: str, rollouts_path: Path,
                          out: Path, n_frames: int, attrs: dict[str, Any], progress: bool,
                          workers: int | None) -> EncodingStats:
    from accelerate import PartialState

    from promptlam.vlm.encoder import FrameEncoder

    state = PartialState(cpu=not torch.cuda.is_available())  # cpu=True: torchrun shards on CPUs too
    encoder = FrameEncoder(target, where, device=state.device)
    text = encoder.model_text(task)
    record = {
        **provenance(), "model": target.model, "revision": target.revision, "commit": encoder.source.commit,
        "family": target.family, "prompt": encoder.prompt(task), "model_text": text,
        "layers": getattr(encoder, "layers", None), "num_layers": getattr(encoder, "num_layers", None),
        "processes": state.num_processes,
    }
    attrs = {**attrs, "prompt": encoder.prompt(task), "provenance": record}
    if workers is None:
        # On a CPU the model and a loader worker would share the cores (measured slower, see
        # docs/benchmarks.md); on a GPU, workers keep it fed.
        workers = min(4, (os.cpu_count() or 1) - 1) if state.device.type == "cuda" else 0
    start, stop = _shard(n_frames, state.process_index, state.num_processes)
    probe = encoder.encode(encoder.preprocess(np.zeros((1, 8, 8, 3), np.uint8), text))
    frame_shape = tuple(probe.shape[1:])
    if state.num_processes == 1:
        with TargetWriter(out, n_frames, frame_shape, attrs) as writer:
            return encode_rows(encoder, rollouts_path, 0, n_frames, text, writer.write,
                               target.batch_size, workers, progress)
    part = out.with_name(f"{out.name}.part{state.process_index}")
    with TargetWriter(part, stop - start, frame_shape, {**attrs, "n_frames": stop - start}) as writer:
        stats = encode_rows(encoder, rollouts_path, start, stop, text,
                            lambda row, values: writer.write(row - start, values),
                            target.batch_size, workers, progress and state.is_main_process)
    state.wait_for_everyone()
    if state.is_main_process:
        _merge_parts(out, n_frames, frame_shape, attrs, state.num_processes)
    state.wait_for_everyone()
    return stats


def _merge_parts(out: Path, n_frames: int, frame_shape: tuple[int, ...], attrs: dict[str, Any], parts: int) -> None:
    from promptlam.data.target_file import TargetFile

    paths = [out.with_name(f"{out.name}.part{rank}") for rank in range(parts)]
    with TargetWriter(out, n_frames, frame_shape, attrs) as writer:
        row = 0
        for path in paths:
            with TargetFile(path) as part:
                for first in range(0, part.targets.shape[0], 4096):
                    values = part.targets[first:first + 4096]
                    writer.write(row + first, values)
                row += part.targets.shape[0]
    for path in paths:
        path.unlink()
