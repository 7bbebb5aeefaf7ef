"""A sweep of small LAM runs: N separate processes against the same runs batched into one
process per core.

    python bench/sweep_batching.py [--config config.yaml --config profiles/smoke/smoke.yaml]
                                   [--runs 8] [--steps 30] [--cores 2] [--run target/state/delta]
                                   [--latent-dim 16]

  - separate: one `promptlam lam train --seed S` process per run, `--cores` at a time (what
              Snakemake does with one job per run and one thread per job);
  - batched:  `--cores` processes, each `promptlam lam train --seed S1 S2 ...` over its share of
              the seeds, one after another (start-up, imports and file opening paid once);
  - start-up: the wall time of `promptlam lam train --help` (importing the CLI), and of one
              process that imports the training stack and exits.
Both modes train the same runs (the bench checks the weights are byte-identical) and run every
process with one thread. Prints runs per hour of each; results go to docs/benchmarks.md by hand.
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from promptlam.config import load_config, validate_config
from promptlam.data.collect import collect
from promptlam.runs import RunKey
from promptlam.targets import compute_target

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def command(config_json: str, root: Path, run: RunKey, seeds: list[int]) -> list[str]:
    return [sys.executable, "-m", "promptlam", "lam", "train", "--method", run.method, "--target", run.target,
            "--formulation", run.formulation, "--latent-dim", str(run.latent_dim), "--seed", *map(str, seeds),
            "--root", str(root), "--config-json", config_json]


def timed(commands: list[list[str]], cores: int) -> float:
    """Wall seconds to run ``commands`` with at most ``cores`` at a time."""
    def one(args: list[str]) -> None:
        subprocess.run(args, check=True, env=ENV, capture_output=True)

    began = time.perf_counter()
    with ThreadPoolExecutor(cores) as pool:
        list(pool.map(one, commands))
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", action="append", default=None)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--run", default="target/state/delta", help="method/target/formulation of the runs")
    parser.add_argument("--latent-dim", type=int, default=16)
    args = parser.parse_args()
    paths = args.config or [str(REPO / "config.yaml"), str(REPO / "profiles/smoke/smoke.yaml")]
    method, target, formulation = args.run.split("/")
    base = load_config(paths)
    data = base.model_dump(mode="json")
    data["lam"]["steps"] = args.steps
    data["lam"]["runs"] = []
    data["figures"] = {"comparisons": {}, "sweeps": {}, "summary": None, "screening_transfer": None}
    config = validate_config(data, "bench config")
    config_json = json.dumps(config.section("seed", "tasks", "lam", "targets"))
    run = RunKey(method, target, formulation, args.latent_dim, 0)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for task in config.tasks:
                rollouts = root / f"data/rollouts/train/{task}.h5"
                rollouts.parent.mkdir(parents=True, exist_ok=True)
                collect(config, task, "train", rollouts)
                if run.spec.head == "vector":
                    out = root / f"data/targets/{target}/{task}.h5"
                    out.parent.mkdir(parents=True, exist_ok=True)
                    compute_target(config, target, task, rollouts, out, progress=False)
        seeds = list(range(args.runs))
        startup = timed([[sys.executable, "-m", "promptlam", "lam", "train", "--help"]], 1)
        imports = timed([[sys.executable, "-c", "import promptlam.lam.train, promptlam.cli"]], 1)
        results = {}
        for mode in ("separate", "batched"):
            mode_root = root / mode
            mode_root.mkdir()
            (mode_root / "data").symlink_to(root / "data", target_is_directory=True)  # the same files
            if mode == "separate":
                commands = [command(config_json, mode_root, run, [seed]) for seed in seeds]
            else:
                commands = [command(config_json, mode_root, run, seeds[core::args.cores]) for core in range(args.cores)]
            results[mode] = timed(commands, args.cores)
        paths = [RunKey(method, target, formulation, run.latent_dim, seed).path for seed in seeds]
        identical = all((root / "separate" / path / "model.safetensors").read_bytes()
                        == (root / "batched" / path / "model.safetensors").read_bytes() for path in paths)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; {args.runs} runs of "
          f"{args.run} (ld{run.latent_dim}), {args.steps} steps each, {args.cores} processes of 1 thread")
    print(f"start-up: `lam train --help` {startup:.2f} s; importing the training stack {imports:.2f} s")
    for mode, seconds in results.items():
        print(f"{mode}: {seconds:.1f} s wall, {3600 * args.runs / seconds:.0f} runs/hour")
    print(f"batched / separate wall: {results['batched'] / results['separate']:.3f}; "
          f"weights byte-identical: {identical}")


if __name__ == "__main__":
    main()
