"""The paper's claims beside what a run measured: `tables/summary.csv`, and the same as plain text
printed when the workflow ends, so that a reviewer compares without opening a PDF.

Reads Figure 1's evaluations and the CSVs of the comparisons `figures.summary` names. Torch-free.
"""

from __future__ import annotations

from pathlib import Path

from promptlam.config import Config
from promptlam.errors import UserError
from promptlam.figures import REFERENCE_GROUP, fig1_inputs, fig1_records
from promptlam.methods import MODEL_TARGET_KINDS
from promptlam.runs import FIGURE_CSV

CLAIMS = {
    "vlm_beats_lapo": "LAPO+VLM beats LAPO downstream: up to 6x the success rate",
    "gap_recovered": "most of the gap to the distractor-free upper bound is recovered",
    "embeddings_worse": "embedding-only targets (CLIP, DINOv2, ...) are worse than promptable VLMs",
    "molmo_best": "Molmo is the best target",
    "molmo_most_robust": "Molmo is the most robust to the prompt",
    "newer_not_better": "newer VLMs are not always better",
}
"""What the paper states (shared with the docs: docs/policy.md "Summary")."""

SUMMARY_COLUMNS = ["claim", "paper", "measured", "background", "estimate", "low", "high", "agrees", "source", "note"]
"""`measured`: the quantity; `estimate`, `low`, `high`: it with its 95% interval where one
exists; `agrees`: `yes` (the interval on the claim's side), `no` (on the other side), `unclear`
(it straddles), `not assessed`."""


def summary_inputs(config: Config) -> list[str]:
    """Figure 1's evaluations and the CSVs of the comparisons the summary reads."""
    summary = config.figures.summary
    names = [name for name in (summary.benchmark, summary.prompts) if name is not None]
    return fig1_inputs(config) + [FIGURE_CSV.format(name=name) for name in dict.fromkeys(names)]


def _verdict(low: float, high: float) -> str:
    """Whether an interval of a difference the claim says is positive lies above 0."""
    return "yes" if low > 0 else "no" if high < 0 else "unclear"


def _fig1_rows(config: Config, root: Path) -> list[dict]:
    """Per background split: VLM minus LAPO success IQM (rliable's stratified bootstrap over both
    sets of runs) with the ratio, and the share of the distractor-free gap recovered."""
    from promptlam.stats import aggregate_iqm, iqm_difference, score_matrix

    summary, fig1 = config.figures.summary, config.figures.fig1
    records = fig1_records(config, root)
    rows = []
    for background in config.evaluation.backgrounds:
        at = records[records.background == background]
        vlm, base = score_matrix(at, summary.vlm)[0], score_matrix(at, summary.baseline)[0]
        difference, low, high = iqm_difference(vlm, base, fig1.bootstrap_reps, config.seed)
        vlm_iqm, base_iqm = aggregate_iqm(vlm), aggregate_iqm(base)
        ratio = f"{vlm_iqm / base_iqm:.2f}x" if base_iqm > 0 else "undefined (LAPO's IQM is 0)"
        rows.append({"claim": "vlm_beats_lapo", "measured": f"success IQM, {summary.vlm} minus {summary.baseline}",
                     "background": background, "estimate": difference, "low": float(low), "high": float(high),
                     "agrees": _verdict(low, high), "source": FIGURE_CSV.format(name="fig1"),
                     "note": f"{vlm_iqm:.3f} vs {base_iqm:.3f}: ratio {ratio}; {len(vlm)} and {len(base)} seeds"})
        if summary.distractor_free is not None:
            free_iqm = aggregate_iqm(score_matrix(at, summary.distractor_free)[0])
            gap = free_iqm - base_iqm
            share = (vlm_iqm - base_iqm) / gap if gap > 0 else float("nan")
            rows.append({"claim": "gap_recovered", "background": background, "estimate": share,
                         "measured": f"({summary.vlm} - {summary.baseline}) / ({summary.distractor_free} - "
                                     f"{summary.baseline}), success IQM",
                         "agrees": "unclear" if gap <= 0 else "yes" if share > 0.5 else "no",
                         "source": FIGURE_CSV.format(name="fig1"),
                         "note": "point estimate; each bar's interval is in fig1.csv"
                                 + ("" if gap > 0 else "; the distractor-free bar is not above LAPO")})
    return rows


def _read_comparison(root: Path, name: str):
    import pandas as pd

    path = root / FIGURE_CSV.format(name=name)
    try:
        return pd.read_csv(path, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: no readable comparison table ({type(exc).__name__}); run `snakemake {path}`") from None


def _headline_metrics(table) -> list[tuple[str, str, str]]:
    """(metric, background, which way is better) of a comparison table: success per background
    split when it has it, else the movement probe."""
    success = [("success_iqm", background, "above") for background in dict.fromkeys(table.background[table.metric == "success_iqm"])]
    return success or [("probe_action_xyz", "", "below")]


def _is_molmo(config: Config, target: str) -> bool:
    spec = config.targets.get(target)
    return getattr(spec, "family", "").startswith("molmo")


def _better_apart(a, b, better: str) -> bool:
    """Whether row ``a``'s interval lies wholly on the better side (`above` or `below`) of ``b``'s."""
    return a.low > b.high if better == "above" else a.high < b.low


def _benchmark_rows(config: Config, root: Path) -> list[dict]:
    name = config.figures.summary.benchmark
    table = _read_comparison(root, name)
    source = FIGURE_CSV.format(name=name)
    targets = table[table.kind.isin(MODEL_TARGET_KINDS)]
    rows = []
    for metric, background, better in _headline_metrics(table):
        at = targets[(targets.metric == metric) & (targets.background == background)]
        vlms, embeddings = at[at.kind == "vlm"], at[at.kind == "embedding"]
        if len(vlms) and len(embeddings):
            pairs = [(v, e) for _, v in vlms.iterrows() for _, e in embeddings.iterrows()]
            vlm_better = sum(_better_apart(v, e, better) for v, e in pairs)
            embedding_better = sum(_better_apart(e, v, better) for v, e in pairs)
            agrees = "yes" if vlm_better and not embedding_better else "no" if embedding_better > vlm_better else "unclear"
            rows.append({"claim": "embeddings_worse", "measured": f"{metric}: share of (VLM, embedding) target pairs "
                         f"with the VLM better, intervals apart", "background": background,
                         "estimate": vlm_better / len(pairs), "agrees": agrees, "source": source,
                         "note": f"{len(pairs)} pairs: VLM better apart {vlm_better}, embedding better apart {embedding_better}"})
        else:
            rows.append({"claim": "embeddings_worse", "measured": metric, "background": background,
                         "agrees": "not assessed", "source": source, "note": "needs vlm and embedding targets"})
        molmo = at.target.map(lambda target: _is_molmo(config, target))
        if molmo.any() and not molmo.all():
            def best(rows):
                return rows.loc[rows.estimate.idxmax() if better == "above" else rows.estimate.idxmin()]

            ours, theirs = best(at[molmo]), best(at[~molmo])
            above, below = _better_apart(ours, theirs, better), _better_apart(theirs, ours, better)
            rows.append({"claim": "molmo_best", "measured": f"{metric}: the best Molmo target",
                         "background": background, "estimate": ours.estimate, "low": ours.low, "high": ours.high,
                         "agrees": "yes" if above else "no" if below else "unclear", "source": source,
                         "note": f"{ours.target} against the best other, {theirs.target}: {theirs.estimate:.3f} "
                                 f"[{theirs.low:.3f}, {theirs.high:.3f}]"})
        else:
            rows.append({"claim": "molmo_best", "measured": metric, "background": background, "agrees": "not assessed",
                         "source": source, "note": "needs Molmo and other targets"})
    return rows


def _prompt_rows(config: Config, root: Path) -> list[dict]:
    name = config.figures.summary.prompts
    table = _read_comparison(root, name)
    source = FIGURE_CSV.format(name=name)
    targets = table[table.group != REFERENCE_GROUP]
    rows = []
    for metric, background, _ in _headline_metrics(table):
        at = targets[(targets.metric == metric) & (targets.background == background)]
        spread = at.groupby("group", sort=False).estimate.agg(lambda values: values.max() - values.min())
        measured = f"{metric}: max - min over prompts"
        if spread.empty:
            continue
        steadiest = spread.idxmin()
        molmos = [group for group in spread.index if _is_molmo(config, group)]
        rows.append({"claim": "molmo_most_robust", "measured": measured, "background": background,
                     "estimate": float(spread[steadiest]),
                     "agrees": "not assessed" if not molmos or len(spread) < 2 else
                               "yes" if _is_molmo(config, steadiest) else "no",
                     "source": source, "note": "spread per target: " + ", ".join(
                         f"{group} {value:.3f}" for group, value in spread.items())})
    return rows


def summary_table(config: Config, root: Path):
    """The rows of `tables/summary.csv` (``SUMMARY_COLUMNS``)."""
    import pandas as pd

    summary = config.figures.summary
    rows = _fig1_rows(config, root)
    if summary.benchmark is not None:
        rows += _benchmark_rows(config, root)
    if summary.prompts is not None:
        rows += _prompt_rows(config, root)
    rows.append({"claim": "newer_not_better", "measured": "", "agrees": "not assessed",
                 "note": "needs each model's release date, which the config does not record"})
    table = pd.DataFrame(rows).reindex(columns=SUMMARY_COLUMNS)
    table["paper"] = table.claim.map(CLAIMS)
    return table


def summary_text(table) -> str:
    """The summary as plain text: one block per claim."""
    lines = ["The paper's claims beside this run (tables/summary.csv; 95% intervals)", ""]
    for claim, rows in table.groupby("claim", sort=False):
        lines.append(f"* {CLAIMS[claim]}")
        for _, row in rows.iterrows():
            where = f" [{row.background}]" if isinstance(row.background, str) and row.background else ""
            value = ""
            if row.estimate == row.estimate:  # not NaN
                value = f" = {row.estimate:.3f}"
                if row.low == row.low:
                    value += f" [{row.low:.3f}, {row.high:.3f}]"
            lines.append(f"    {row.agrees:>12}: {row.measured}{where}{value}"
                         + (f" ({row.note})" if isinstance(row.note, str) and row.note else ""))
    return "\n".join(lines) + "\n"


def make_summary(config: Config, root: Path, csv: Path, txt: Path):
    """Write `tables/summary.csv` and its plain-text form; returns the text."""
    from promptlam.io import atomic_output

    table = summary_table(config, root)
    with atomic_output(csv) as tmp:
        table.to_csv(tmp, index=False)
    text = summary_text(table)
    with atomic_output(txt) as tmp:
        tmp.write_text(text)
    return text
