"""The LAM loader alone (no model): samples/s and peak RSS of building training batches.

    python bench/loader.py [--json] [--device cpu|cuda] [--trajectories 240] [--resolution 128]
                           [--batch-size 512] [--steps 40] [--data DIR] [--out FILE.json]

A train rollout file of at least ``--trajectories`` trajectories at ``--resolution`` px
(config.yaml's storage) is made by collecting 8 reach-v3 trajectories and repeating them
(bench/lam.py's ``enlarge``), or from ``--data DIR/reach-v3.h5`` (repeated likewise when it holds
fewer: a file too small would be served from h5py's chunk cache). Then, on one thread (one core),
for each case the batches of ``lam train`` are drawn as it draws them
(``TransitionData.step_batch``, after ``place``) onto ``--device``:
  - pixel:  LAPO (distracted frames in, the next distracted frame predicted);
  - twin:   distracted frames in, the clean twins' frames predicted (two frame datasets);
  - vector: distracted frames in, a 3072-d vector target (the clean frame at 32 px, float16);
each with the rows resident (`ram` on the CPU, `device` on a GPU) and streamed in blocks of 16
trajectories (`stream`, ``lam.shuffle_buffer``; through pinned RAM on a GPU). Each measurement runs in its own process, so its peak RSS is its own.
With ``--json`` only one JSON object is printed: ``{"<case>": {"samples_per_s": ..,
"peak_rss_mb": .., ...}}`` (the case named ``<head>`` is the resident one, ``<head>-stream`` the
streamed one), plus the data's size. Results go to docs/benchmarks.md by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
CASES = {"pixel": ("distracted", 1, None), "twin": ("clean", 1, None), "vector": ("distracted", 0, "clean-32")}
"""head: (frames the forward model predicts, next frames read, vector target)."""
STREAM_BLOCK = 16

MEASURE = """
import json, resource, sys, time
import torch
from pathlib import Path
from promptlam.lam.data import TaskFiles, TransitionData
torch.set_num_threads(1)
rollouts, target, predicted, next_frames, placement, batch, steps, block, device = json.loads(sys.argv[1])
device = torch.device(device)
sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
data = TransitionData([TaskFiles(Path(rollouts), Path(target) if target else None)], 3, 10, "distracted",
                      predicted, formulation="delta", next_frames=next_frames,
                      shuffle_buffer=block if placement == "stream" else None)
began = time.perf_counter()
data.place(placement, device, 0.6, log=False)
placed = time.perf_counter() - began
data.step_batch(0, 0, batch)  # warm-up (allocator; the first block)
sync()
began = time.perf_counter()
for step in range(1, steps + 1):
    data.step_batch(0, step, batch)
sync()
seconds = time.perf_counter() - began
print(json.dumps({"samples_per_s": round(steps * batch / seconds, 1), "place_seconds": round(placed, 2),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                  "resident_bytes": data.nbytes(), "placement": data.placement}))
"""


def make_rollouts(folder: Path, trajectories: int, resolution: int) -> Path:
    """reach-v3 at ``resolution``: 8 collected trajectories repeated to ``trajectories``."""
    sys.path.insert(0, str(REPO / "bench"))
    from lam import enlarge
    from promptlam.config import load_config
    from promptlam.data.collect import collect

    config = load_config([str(REPO / "config.yaml")], [json.dumps(
        {"tasks": ["reach-v3"], "render": {"resolution": resolution}, "rollouts": {"train_trajectories": 8, "labelled_budgets": [2]}})])
    seed = folder / "seed.h5"
    collect(config, "reach-v3", "train", seed, progress=False)
    path = folder / "reach-v3.h5"
    enlarge(seed, path, -(-trajectories // 8))
    return path


def make_target(rollouts: Path, folder: Path) -> Path:
    from promptlam.config import load_config
    from promptlam.targets import compute_target

    config = load_config([str(REPO / "config.yaml")], [json.dumps(
        {"tasks": ["reach-v3"], "targets": {"clean-32": {"kind": "frame_vector", "frames": "clean", "size": 32}}})])
    path = folder / "clean-32.h5"
    compute_target(config, "clean-32", "reach-v3", rollouts, path, progress=False)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print only the results, as one JSON object")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where batches go")
    parser.add_argument("--trajectories", type=int, default=240)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--data", type=Path, help="a folder holding reach-v3.h5 (default: made here)")
    parser.add_argument("--out", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        from promptlam.data.rollout_file import RolloutFile

        if args.data:
            rollouts = args.data / "reach-v3.h5"
            with RolloutFile(rollouts) as given:
                have = given.n_trajectories
            if have < args.trajectories:
                sys.path.insert(0, str(REPO / "bench"))
                from lam import enlarge

                enlarge(rollouts, folder / "reach-v3.h5", -(-args.trajectories // have))
                rollouts = folder / "reach-v3.h5"
        else:
            rollouts = make_rollouts(folder, args.trajectories, args.resolution)
        target = make_target(rollouts, folder)

        with RolloutFile(rollouts) as file:
            size = {"trajectories": file.n_trajectories, "frames": file.n_frames, "resolution": file.resolution,
                    "file_mb": round(rollouts.stat().st_size / 1e6, 1)}
        results: dict = {}
        for head, (predicted, next_frames, vector) in CASES.items():
            for placement in ("device" if args.device == "cuda" else "ram", "stream"):
                spec = [str(rollouts), str(target) if vector else None, predicted, next_frames, placement,
                        args.batch_size, args.steps, STREAM_BLOCK, args.device]
                out = subprocess.run([sys.executable, "-c", MEASURE, json.dumps(spec)], check=True, env=env,
                                     capture_output=True, text=True).stdout
                name = f"{head}-stream" if placement == "stream" else head
                results[name] = json.loads(out.strip().splitlines()[-1])
                if not args.json:
                    print(f"{name:14s} {results[name]}", file=sys.stderr)
    results["data"] = size | {"batch_size": args.batch_size, "steps": args.steps, "stream_block": STREAM_BLOCK,
                              "machine": f"{platform.machine()}, {os.cpu_count()} cores, one thread, {args.device}"
                                         + (f" ({torch.cuda.get_device_name()})" if args.device == "cuda" else "")}
    print(json.dumps(results, indent=None if args.json else 2))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
