"""Where the time of a finished workflow run went: per stage, and how busy the cores were.

    python bench/workflow_times.py results/cpu-science [--cores 2]

Reads the run's `benchmark:` files (seconds and peak RSS of every job, summed per stage) and its
latest Snakemake log (when each job started and finished, with its threads) and prints the wall
time from the first job's start to the last one's end, the core-seconds the jobs held, and the
spans of more than 20 s in which cores stood idle, with the jobs that were running then. The
Markdown goes to docs/benchmarks.md by hand, with the machine.
"""

from __future__ import annotations

import argparse
import csv
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path


def stage_table(workdir: Path) -> list[dict[str, float | str]]:
    """Per stage (the first folder under `benchmarks/`, after a screening run's `screen{N}/`,
    reported as `{stage} (screen{N})`): jobs, total and longest job seconds, shortest job
    seconds and peak RSS."""
    stages: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for path in sorted((workdir / "benchmarks").rglob("*.tsv")):
        with path.open() as handle:
            row = next(csv.DictReader(handle, delimiter="\t"))
        parts = path.relative_to(workdir / "benchmarks").parts
        stage = f"{parts[1]} ({parts[0]})" if parts[0].startswith("screen") else parts[0]
        rss = float(row["max_rss"]) if row["max_rss"] not in ("", "NA", "-") else float("nan")
        stages[stage].append((float(row["s"]), rss))
    return [{"stage": stage, "jobs": len(jobs), "total_s": sum(s for s, _ in jobs),
             "shortest_s": min(s for s, _ in jobs), "longest_s": max(s for s, _ in jobs),
             "peak_rss_mb": max(r for _, r in jobs)}
            for stage, jobs in stages.items()]


@dataclass
class Job:
    rule: str
    output: str
    threads: int
    start: datetime
    end: datetime | None = None


def read_log(path: Path) -> list[Job]:
    """The jobs of a Snakemake log: rule, first output, threads, start and end."""
    jobs: dict[int, Job] = {}
    stamp, pending = None, None
    for line in path.read_text().splitlines():
        if match := re.fullmatch(r"\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]", line):
            stamp = datetime.strptime(match.group(1), "%a %b %d %H:%M:%S %Y")
        elif match := re.match(r"(?:local)?rule (\w+):", line):
            pending = {"rule": match.group(1), "threads": 1, "start": stamp, "output": ""}
        elif pending is not None and (match := re.match(r"\s+(output|jobid|threads): (.*)", line)):
            pending[match.group(1)] = match.group(2)
        elif pending is not None and line.startswith(("Shell command", "Select jobs", "[")) and "jobid" in pending:
            jobs[int(pending.pop("jobid"))] = Job(pending["rule"], pending["output"].split(",")[0],
                                                  int(pending["threads"]), pending["start"])
            pending = None
        elif match := re.match(r"Finished jobid: (\d+)", line):
            if int(match.group(1)) in jobs:
                jobs[int(match.group(1))].end = stamp
    return [job for job in jobs.values() if job.end is not None]


def utilisation(jobs: list[Job], cores: int) -> tuple[float, float, list[tuple[int, int, list[str]]]]:
    """Wall seconds, core-seconds held by jobs, and the idle spans (start s, end s, running jobs)."""
    first = min(job.start for job in jobs)
    wall = int((max(job.end for job in jobs) - first).total_seconds())
    busy = [0] * (wall + 1)
    for job in jobs:
        for second in range(int((job.start - first).total_seconds()), int((job.end - first).total_seconds())):
            busy[second] += min(job.threads, cores)
    spans, start = [], None
    for second, used in enumerate([*busy, cores]):
        if used < cores and start is None:
            start = second
        elif used >= cores and start is not None:
            if second - start > 20:
                running = [f"{job.rule} {job.output}" for job in jobs
                           if (job.start - first).total_seconds() <= start < (job.end - first).total_seconds()]
                spans.append((start, second, running))
            start = None
    return wall, float(sum(min(used, cores) for used in busy)), spans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", type=Path, help="the folder the workflow ran in (--directory)")
    parser.add_argument("--cores", type=int, default=2, help="the cores the run had")
    parser.add_argument("--log", type=Path, help="the Snakemake log to read (default: the run's latest)")
    args = parser.parse_args()
    logs = [args.log] if args.log else sorted((args.workdir / ".snakemake" / "log").glob("*.snakemake.log"))
    if not logs:
        raise SystemExit(f"{args.workdir}: no .snakemake/log/*.snakemake.log; run the workflow there first")
    jobs = read_log(logs[-1])
    wall, held, spans = utilisation(jobs, args.cores)
    print(f"# {args.workdir} ({logs[-1].name}): {len(jobs)} jobs, {wall} s wall ({wall / 60:.1f} min); "
          f"jobs held {held:.0f} of {wall * args.cores} core-seconds ({held / (wall * args.cores):.0%})")
    print("\n| stage | jobs | total job s | per job s | peak RSS MB |\n|---|---|---|---|---|")
    for row in stage_table(args.workdir):
        print(f"| {row['stage']} | {row['jobs']} | {row['total_s']:.0f} | {row['shortest_s']:.0f}-"
              f"{row['longest_s']:.0f} | {row['peak_rss_mb']:.0f} |")
    print("\nspans with an idle core (s from the start):")
    for start, end, running in spans:
        print(f"  {start}-{end} ({end - start} s): {'; '.join(running) or 'nothing running'}")


if __name__ == "__main__":
    main()
