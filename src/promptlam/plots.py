"""Figure 1: MetaWorld success rate per method (IQM, 95 % stratified-bootstrap CI) and its numbers,
one panel per background split, with the random-action floor."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from promptlam.io import atomic_output
from promptlam.stats import normalise_records, per_seed_means

if TYPE_CHECKING:
    import pandas

Y_LABELS = {"raw": "success rate (IQM, 95% CI)", "normalised": "normalised success (IQM, 95% CI)"}


def _rows_for_scale(summary: pandas.DataFrame, scale: str) -> pandas.DataFrame:
    if scale not in Y_LABELS:
        raise ValueError(f"scale must be one of {list(Y_LABELS)}, got {scale!r}")
    rows = summary[summary["scale"] == scale]
    if rows.empty:
        raise ValueError(f"summary has no {scale!r} rows (was normalise_by given to summarise?)")
    return rows.reset_index(drop=True)


def _dots(summary_rows: pandas.DataFrame, records: pandas.DataFrame, scale: str) -> pandas.DataFrame:
    """Per-seed mean-over-tasks success on the same scale (and task set) as the bars."""
    if scale == "normalised":
        references = {r for r in summary_rows["reference"] if isinstance(r, str) and r}
        if len(references) != 1:
            raise ValueError(f"normalised rows must name exactly one reference, got {sorted(references)}")
        records, _ = normalise_records(records, references.pop())
    dots = per_seed_means(records)
    return dots[dots["label"].isin(summary_rows["label"])]


@dataclass
class Panel:
    """One panel of Figure 1: a title, its summary rows and records, and the floor to draw."""

    title: str
    summary: pandas.DataFrame
    records: pandas.DataFrame
    floor: float | None = None
    """Success IQM of uniform random actions (a dashed line), or None."""


def plot_fig1(panels: list[Panel], out_pdf: Path, scale: str = "raw", title: str | None = None) -> None:
    """One panel per background split: bars of IQM per label with asymmetric CI whiskers, one dot
    per seed for the spread, and the random-action floor as a dashed line.

    The dots are each seed's mean over tasks (not the IQM), so a reader can see how many seeds
    there are and whether one of them carries the bar. A percentile CI need not contain the
    point estimate; whiskers are clipped at the bar top so matplotlib accepts them.
    """
    import matplotlib

    matplotlib.use("Agg")  # headless cluster nodes; must precede the pyplot import
    import matplotlib.pyplot as plt
    import seaborn as sns

    labels = list(_rows_for_scale(panels[0].summary, scale)["label"])
    fig, axes = plt.subplots(1, len(panels), figsize=(len(panels) * max(4.0, 1.1 * len(labels) + 1.5), 4.2),
                             squeeze=False, sharey=scale == "raw")
    try:
        colours = sns.color_palette("colorblind", len(labels))
        for ax, panel in zip(axes[0], panels):
            rows = _rows_for_scale(panel.summary, scale).set_index("label").reindex(labels).reset_index()
            dots = _dots(rows, panel.records, scale)
            x = np.arange(len(labels))
            iqm = rows["iqm"].to_numpy(dtype=float)
            yerr = np.vstack([np.maximum(iqm - rows["iqm_low"].to_numpy(dtype=float), 0.0),
                              np.maximum(rows["iqm_high"].to_numpy(dtype=float) - iqm, 0.0)])
            ax.bar(x, iqm, color=colours, width=0.7, zorder=1)
            ax.errorbar(x, iqm, yerr=yerr, fmt="none", ecolor="black", capsize=4, linewidth=1.2, zorder=2)
            # one dot per seed, jittered along x by a generator of its own (seaborn's stripplot
            # draws from NumPy's global one: the figure's bytes changed from run to run)
            jitter = np.random.default_rng(0)
            for position, label in enumerate(labels):
                seeds = dots.loc[dots["label"] == label, "success"].to_numpy(dtype=float)
                ax.scatter(position + jitter.uniform(-0.15, 0.15, len(seeds)) * (len(seeds) > 1), seeds,
                           s=3.5 ** 2, color="black", alpha=0.7, linewidths=0, zorder=3)
            if panel.floor is not None and scale == "raw":
                ax.axhline(panel.floor, color="grey", linestyle="--", linewidth=1.2, zorder=4,
                           label=f"random actions {panel.floor:.2f}")
                ax.legend(loc="upper left", fontsize=8, frameon=False)
            ax.set_xticks(x)
            ax.set_xticklabels(labels, rotation=30, ha="right")
            ax.set_xlabel("")
            ax.set_ylabel(Y_LABELS[scale])
            if scale == "raw":
                ax.set_ylim(0.0, 1.05)
            else:
                ax.set_ylim(bottom=0.0)
            ax.grid(axis="y", alpha=0.3, zorder=0)
            ax.set_axisbelow(True)
            ax.set_title(panel.title)
        if title:
            fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        with atomic_output(out_pdf) as tmp:
            # (the temporary name ends in .tmp, so say the format; no creation date: same bytes each run)
            fig.savefig(tmp, format="pdf", metadata={"CreationDate": None})
    finally:
        plt.close(fig)


def write_fig1_csv(summary: pandas.DataFrame, records: pandas.DataFrame, out_csv: Path) -> None:
    """Write the summary table behind Figure 1 (one row per label x scale), floats to 6 digits.

    ``records`` is only used to check that every summarised label comes from these records, so a
    stale summary cannot be written next to a figure drawn from newer data.
    """
    unknown = sorted(set(summary["label"]) - set(records["label"]), key=str)
    if unknown:
        raise ValueError(f"summary labels {unknown} are not in records")
    with atomic_output(out_csv) as tmp:
        summary.round(6).to_csv(tmp, index=False)
