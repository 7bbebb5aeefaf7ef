"""Wall time of the CPU smoke Figure 1 from scratch, per stage, from Snakemake's benchmark files.

    python bench/smoke_fig1.py [--cores 2] [--keep DIR]

Runs `snakemake figures/fig1.pdf --profile profiles/smoke` in an empty folder, then sums the
`benchmark:` files of each stage (rollouts, targets, lam, bc, decoder, evaluate, ...): jobs, total
and longest job seconds, peak RSS. The end-to-end wall time includes Snakemake's own overhead and
the jobs that ran side by side. Results go to docs/benchmarks.md by hand, with the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from workflow_times import stage_table  # bench/ is on the path of a script run from it

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--keep", help="run in this (empty) folder and keep it")
    args = parser.parse_args()
    workdir = Path(args.keep or tempfile.mkdtemp(prefix="smoke-fig1-"))
    workdir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "snakemake", "figures/fig1.pdf", "--snakefile", str(REPO / "Snakefile"),
               "--profile", str(REPO / "profiles/smoke"), "--cores", str(args.cores), "--directory", str(workdir)]
    began = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - began
    if run.returncode:
        sys.exit(run.stderr[-3000:])
    print(f"# smoke Figure 1 from scratch: {wall:.0f} s wall on {args.cores} cores "
          f"({os.cpu_count()} CPUs, {platform.processor() or platform.machine()})")
    print("\n| stage | jobs | total job s | longest job s | peak RSS MB |\n|---|---|---|---|---|")
    for row in stage_table(workdir):
        print(f"| {row['stage']} | {row['jobs']} | {row['total_s']:.1f} | {row['longest_s']:.1f} | {row['peak_rss_mb']:.0f} |")
    print(f"\noutputs in {workdir}")


if __name__ == "__main__":
    main()
