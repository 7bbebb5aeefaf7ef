"""Latent action model training: pipeline against bare model steps, and memory against data size.

    python bench/lam.py [--config config.yaml --config profiles/smoke/smoke.yaml] [--set JSON]
                        [--steps 40] [--run lapo/pixels/absolute] [--data DIR] [--factors 1 10 100]
                        [--out FILE.json]

  - bare:     forward + backward + optimiser step on batches read beforehand, samples/s, with
              frames and weights channels last (the default) and in the default layout;
  - pipeline: the training loop of `promptlam lam train` (the rows placed as lam.data_placement
              says, a batch gathered per step, online probe, logging), samples/s, and its ratio
              to bare;
  - memory:   peak RSS of a training process on a dataset 1x, 10x and 100x the size of the
              config's train rollouts (the trajectories repeated into a larger rollout file).
The config's train rollouts are collected first, or read from ``--data DIR/<task>.h5`` when given
(collected beforehand: a GPU machine then needs no MetaWorld). On CUDA the bare steps run in bf16
autocast, as `lam train` does there.
Results go to docs/benchmarks.md by hand, with the machine they were measured on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

from promptlam.config import load_config
from promptlam.data.rollout_file import RolloutFile, RolloutWriter, TRAJECTORY_FIELDS, row_fields
from promptlam.lam import models
from promptlam.lam.data import TaskFiles
from promptlam.lam.train import build_data, build_model, train_run
from promptlam.runs import RunKey
from promptlam.targets import compute_target

REPO = Path(__file__).resolve().parents[1]


def enlarge(source: Path, out: Path, factor: int) -> None:
    """A rollout file holding every trajectory of ``source`` ``factor`` times."""
    with RolloutFile(source) as rollouts:
        fields = list(row_fields(rollouts.resolution))
        writer = RolloutWriter(out, task=rollouts.task, split="train", resolution=rollouts.resolution,
                               config=rollouts.config, provenance=rollouts.provenance,
                               storage=load_config([]).rollouts.storage)
        with writer:
            for _ in range(factor):
                for index in range(rollouts.n_trajectories):
                    rows = rollouts.trajectory(index, tuple(fields))
                    record = {name: rollouts.trajectories[name][index] for name in TRAJECTORY_FIELDS
                              if name not in ("start", "length")}
                    writer.append(rows, record)


def peak_rss_mb(config_paths: list[str], overrides: list[str], data_root: Path, steps: int) -> float:
    code = f"""
import json, resource, sys
from pathlib import Path
from promptlam.config import load_config
from promptlam.lam.data import TaskFiles
from promptlam.lam.train import train_run
from promptlam.runs import RunKey
config = load_config({config_paths!r}, {overrides!r} + ['{{"lam": {{"steps": {steps}, "log_every": {steps}, "checkpoint_every": {steps}}}}}'])
files = [TaskFiles(p) for p in sorted(Path({str(data_root)!r}).glob("*.h5"))]
train_run(config, RunKey("lapo", "pixels", "absolute", 16, 0), files, Path({str(data_root)!r}) / "run", [f.rollouts.stem for f in files], progress=False)
print("PEAK_RSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
    # Each child reports its own peak (the children's rusage is a maximum over all of them).
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return int(out.split("PEAK_RSS_KB")[1].split()[0]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", action="append", default=None)
    parser.add_argument("--set", action="append", default=[], metavar="JSON",
                        help='config overrides, e.g. \'{"tasks": ["reach-v3"]}\'')
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--memory-steps", type=int, default=20)
    parser.add_argument("--factors", type=int, nargs="*", default=[1, 10, 100],
                        help="dataset sizes for the memory measurement (none: skip it)")
    parser.add_argument("--data", type=Path, help="a folder of train rollout files <task>.h5 (default: collect)")
    parser.add_argument("--out", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--run", default="lapo/pixels/absolute", help="method/target/formulation of the run to time")
    parser.add_argument("--latent-dim", type=int, default=16)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    device = "cuda" if torch.cuda.is_available() else "cpu"

    def synchronize():
        if device == "cuda":
            torch.cuda.synchronize()

    config_paths = args.config or [str(REPO / "config.yaml"), str(REPO / "profiles/smoke/smoke.yaml")]
    config = load_config(config_paths, args.set)
    lam = config.lam.model_copy(update={"steps": args.steps, "log_every": args.steps, "checkpoint_every": args.steps})
    config = config.model_copy(update={"lam": lam})
    run = RunKey(*args.run.split("/"), args.latent_dim, 0)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = []
        for task in config.tasks:
            path = tmp / "data" / f"{task}.h5"
            if args.data:
                path = args.data / f"{task}.h5"
            else:
                from promptlam.data.collect import collect  # MetaWorld: only when collecting here

                collect(config, task, "train", path, progress=False)
            target = None
            if run.spec.head == "vector":
                target = tmp / "targets" / f"{task}.h5"
                compute_target(config, run.target, task, path, target, progress=False)
            files.append(TaskFiles(path, target))
        # Bare: the same model and optimiser on batches read beforehand, in both memory layouts.
        data = build_data(config, run, files)
        batches = [{key: value.to(device) for key, value in data.batch(*data.sample(run.seed, step, lam.batch_size)).items()}
                   for step in range(args.steps)]
        bare_by_layout = {}
        for name, layout in (("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last)):
            models.MEMORY_FORMAT = layout
            model = build_model(config, run, data, "lam-init").to(device)
            optimizer = torch.optim.AdamW(model.parameters(), lr=lam.learning_rate)

            def step(batch):
                with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
                    output = model(batch)
                optimizer.zero_grad()
                output.loss.backward()
                optimizer.step()

            step(batches[0])  # warm-up (CUDA kernels, allocator)
            synchronize()
            began = time.perf_counter()
            for batch in batches:
                step(batch)
            synchronize()
            bare_by_layout[name] = args.steps * lam.batch_size / (time.perf_counter() - began)
        bare = bare_by_layout["channels_last"]  # the default, which the pipeline below uses
        data.close()
        metrics = train_run(config, run, files, tmp / "run", list(config.tasks), progress=False)
        pipeline = metrics["samples_per_second_this_process"]

        memory = {}
        frames = {}
        for factor in args.factors:
            root = tmp / f"x{factor}"
            for task_files in files:
                enlarge(task_files.rollouts, root / task_files.rollouts.name, factor)
            frames[factor] = sum(RolloutFile(p).n_frames for p in root.glob("*.h5"))
            memory[factor] = round(peak_rss_mb(config_paths, args.set, root, args.memory_steps), 1)

    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {device}"
                   + (f" ({torch.cuda.get_device_name()})" if device == "cuda" else ""),
        "resolution": config.render.resolution, "batch_size": lam.batch_size, "steps": args.steps,
        "encoder_channels": lam.encoder_channels, "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "method": f"{run.method}/{run.target}",
        "bare_samples_per_s_by_layout": {k: round(v, 1) for k, v in bare_by_layout.items()},
        "bare_samples_per_s": round(bare, 1), "pipeline_samples_per_s": pipeline,
        "ratio_pipeline_to_bare": round(pipeline / bare, 3),
        "peak_rss_mb_by_dataset_factor": memory, "frames_by_dataset_factor": frames,
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
