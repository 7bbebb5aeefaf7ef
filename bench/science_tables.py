"""The tables of docs/lam.md and docs/policy.md, in Markdown, from a finished CPU science run.

    python bench/science_tables.py --config config.yaml profiles/cpu-science/science.yaml \
        --root results/cpu-science

With several roots (runs of the same profile with other top-level `seed`s: other data, videos
and episodes), `--pool` prints the same tables over the runs of all of them together: every
(root, LAM seed) counts as one run.

Reads what the workflow wrote (`tables/lam_probes.csv`, `figures/fig1.csv` and the evaluation
files behind the figure) and prints: the held-out probes of every LAM variant, relative to the
variance of what is predicted (1 = no information), mean over seeds with the 95% Student-t
interval; the references that do not depend on the latent; Figure 1's success IQM and mean per
background split with 95% stratified-bootstrap intervals; and every success rate per task and
seed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from promptlam.config import load_config
from promptlam.figures import RANDOM_LABEL, fig1_records, lam_probe_table, probe_summary
from promptlam.stats import summarise

PROBE_COLUMNS = [("action_xyz", "latent"), ("action_xyz", "untrained_latent"), ("action_xyz", "latent+state"),
                 ("hand_change", "latent+state"), ("residual", "latent+state"), ("residual", "latent+expert")]
"""(predicted quantity, feature) of each column of the probe table."""

REFERENCES = [("action_xyz", "state"), ("hand_change", "state"), ("hand_change", "action+state"),
              ("residual", "state"), ("residual", "action+state"), ("residual", "expert"),
              ("residual", "untrained_latent+state"), ("residual", "untrained_latent+expert")]
"""Probes from features that are the same for every run (or, for untrained latents, close)."""


def interval(mean: float, low: float, high: float, digits: int = 3) -> str:
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def probe_tables(probes: pd.DataFrame) -> str:
    probes = probes.assign(run=probes.method + " / " + probes.target + " / " + probes.formulation
                           + " / ld" + probes.latent_dim.astype(str))
    lines = []
    for horizon in sorted(set(probes.horizon)):
        at = probes[probes.horizon == horizon]
        seeds = ", ".join(sorted({str(int(s)) for s in at.seeds}))
        lines += [f"\nh = {horizon} (seeds per row: {seeds}):\n",
                  "| run | " + " | ".join(f"{q}: {f}" for q, f in PROBE_COLUMNS) + " |",
                  "|---|" + "---|" * len(PROBE_COLUMNS)]
        for run in dict.fromkeys(at.run):
            cells = []
            for quantity, feature in PROBE_COLUMNS:
                row = at[(at.run == run) & (at.predicts == quantity) & (at.feature == feature)]
                cells.append(interval(*row[["relative_mse", "relative_mse_low", "relative_mse_high"]].iloc[0])
                             if len(row) else "")
            lines.append(f"| {run} | " + " | ".join(cells) + " |")
        references = []
        for quantity, feature in REFERENCES:
            row = at[(at.predicts == quantity) & (at.feature == feature)].relative_mse
            if len(row):
                references.append(f"{quantity} from {feature} {row.min():.3f}-{row.max():.3f}")
        lines.append("\nreferences (range over runs): " + "; ".join(references))
    return "\n".join(lines)


def success_tables(config, root: Path) -> str:
    summary = pd.read_csv(root / "figures" / "fig1.csv", keep_default_na=False)
    records = fig1_records(config, root)
    lines = []
    for background in config.evaluation.backgrounds:
        lines += [f"\n{background} backgrounds:\n",
                  "| entry | success IQM [95% CI] | mean [95% CI] | per task (" + ", ".join(config.tasks)
                  + "), seeds " + "/".join(map(str, config.figures.fig1.seeds)) + " |", "|---|---|---|---|"]
        rows = summary[(summary.background == background) & (summary.scale == "raw")]
        for _, row in rows.iterrows():
            per_task = ""
            if row.label != RANDOM_LABEL:
                at = records[(records.background == background) & (records.label == row.label)]
                per_task = ", ".join("/".join(f"{s:.2f}" for s in at[at.task == task].sort_values("seed").success)
                                     for task in config.tasks)
            lines.append(f"| {row.label} | {interval(row.iqm, row.iqm_low, row.iqm_high, 3)} | "
                         f"{interval(row['mean'], row.mean_low, row.mean_high, 3)} | {per_task} |")
    return "\n".join(lines)


def pooled_probes(config, roots: list[Path]) -> pd.DataFrame:
    """The probe summary of ``lam_probe_table`` over the runs of every root together."""
    return probe_summary(pd.concat([lam_probe_table(config, root)[1] for root in roots], ignore_index=True))


def pooled_success(config, roots: list[Path]) -> str:
    """Figure 1's success IQM and mean over the runs of every root together (run = root x seed)."""
    records = pd.concat([fig1_records(config, root).assign(seed=lambda r, i=index: 1000 * i + r.seed)
                         for index, root in enumerate(roots)], ignore_index=True)
    lines = []
    for background in config.evaluation.backgrounds:
        rows = records[records.background == background].drop(columns="background")
        summary = summarise(rows, None, config.figures.fig1.bootstrap_reps, config.seed)
        lines += [f"\n{background} backgrounds ({len(roots)} roots x {len(config.figures.fig1.seeds)} seeds):\n",
                  "| entry | success IQM [95% CI] | mean [95% CI] |", "|---|---|---|"]
        lines += [f"| {row.label} | {interval(row.iqm, row.iqm_low, row.iqm_high)} | "
                  f"{interval(row['mean'], row.mean_low, row.mean_high)} |" for _, row in summary.iterrows()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", nargs="+", default=["config.yaml", "profiles/cpu-science/science.yaml"])
    parser.add_argument("--root", type=Path, nargs="+", default=[Path("results/cpu-science")])
    parser.add_argument("--pool", action="store_true", help="one set of tables over the runs of every root")
    args = parser.parse_args()
    config = load_config(args.config)
    if args.pool:
        print("## Held-out probes, MSE / variance, pooled\n" + probe_tables(pooled_probes(config, args.root)))
        print("\n## Figure 1: success rate, pooled\n" + pooled_success(config, args.root))
        return
    for root in args.root:
        print(f"# {root}\n\n## Held-out probes, MSE / variance\n"
              + probe_tables(pd.read_csv(root / "tables" / "lam_probes.csv")))
        if (root / "figures" / "fig1.csv").exists():
            print("\n## Figure 1: success rate\n" + success_tables(config, root))


if __name__ == "__main__":
    main()
