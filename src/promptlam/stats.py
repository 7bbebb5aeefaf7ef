"""Aggregate success rates across seeds and tasks the way Figure 1 reports them.

Definitions (Agarwal et al. 2021, "Deep RL at the Edge of the Statistical Precipice"), computed
by calling the pinned ``rliable`` library rather than re-implementing it, so our numbers mean
exactly what the paper's do:

* A score matrix is ``[runs, tasks]``: one success rate in [0, 1] per (seed, task) of one entry.
* **IQM** (interquartile mean) is the 25 % trimmed mean over *all* runs x tasks scores pooled
  together (``rliable.metrics.aggregate_iqm`` = ``scipy.stats.trim_mean(..., 0.25, axis=None)``,
  restated in ``aggregate_iqm`` for speed and tested equal): robust to a few outlying seeds or
  tasks, yet less noisy than the median.
* **mean** is the mean over tasks of the per-task mean over runs (``aggregate_mean``).
* **Stratified bootstrap**: each replicate resamples the runs *with replacement independently
  within each task* (the task set stays fixed), recomputes the aggregate, and the CI is the
  percentile interval of those replicates. It answers "how would the number move with other
  seeds on these same tasks?".

Reproducibility caveat: rliable 1.2.0 draws its resampling indices from NumPy's *global* RNG
(``np.random.choice`` in ``StratifiedBootstrap.update_indices``); the ``random_state`` it accepts
is stored by ``arch`` but never used for the indices. We therefore seed the global RNG with
``seed`` for the duration of the call (and restore its previous state afterwards) as well as
passing ``random_state=np.random.RandomState(seed)``. Not thread-safe, which is fine for a
one-process analysis script.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas

log = logging.getLogger(__name__)

SCALES = ("raw", "normalised")
SUMMARY_COLUMNS = ["label", "scale", "iqm", "iqm_low", "iqm_high", "mean", "mean_low", "mean_high",
                   "std", "n_runs", "n_tasks", "reference", "note"]
RECORD_COLUMNS = ("label", "task", "seed", "success")


@contextmanager
def _global_numpy_seed(seed: int) -> Iterator[None]:
    """Seed NumPy's legacy global RNG for a block, then put back whatever state it had.

    Needed because rliable resamples with ``np.random.choice`` (see module docstring); restoring
    keeps this function from silently changing any other code's random stream.
    """
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def aggregate_iqm(scores: np.ndarray) -> float:
    """``rliable.metrics.aggregate_iqm``: ``scipy.stats.trim_mean(scores, 0.25, axis=None)``,
    the same partition and mean step for step (a test checks it equals rliable's), without
    scipy's per-call argument inspection, which was 90% of a 10 000-replicate bootstrap (a
    minute per Figure 1)."""
    pooled = np.asarray(scores, dtype=float).ravel()
    low = int(0.25 * len(pooled))
    high = len(pooled) - low
    return float(np.mean(np.partition(pooled, (low, high - 1))[low:high]))


def _iqm_and_mean(scores: np.ndarray) -> np.ndarray:
    """Both aggregates from one resample, so their CIs share the bootstrap replicates."""
    from rliable import metrics

    return np.array([aggregate_iqm(scores), metrics.aggregate_mean(scores)])


def interval_estimates(scores: np.ndarray, reps: int, seed: int,
                       confidence: float = 0.95) -> dict[str, float]:
    """IQM and mean of a ``[runs, tasks]`` score matrix with stratified-bootstrap percentile CIs.

    ``std`` is the population standard deviation (ddof=0) of all runs x tasks scores: a
    description of the observed spread, defined (0) even for a single score. With one run the
    stratified bootstrap can only redraw that run, so the CI collapses to the point estimate;
    that is the honest answer (no seed-to-seed information), not an error. The same ``seed``
    always gives the same numbers.
    """
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 2 or scores.size == 0:
        raise ValueError(f"scores must be a non-empty [runs, tasks] matrix, got shape {scores.shape}")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or infinite values")
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")

    (iqm, mean), ci = _rliable_intervals(scores, _iqm_and_mean, reps, seed, confidence)
    return {
        "iqm": float(iqm), "iqm_low": float(ci[0, 0]), "iqm_high": float(ci[1, 0]),
        "mean": float(mean), "mean_low": float(ci[0, 1]), "mean_high": float(ci[1, 1]),
        "std": float(np.std(scores, ddof=0)),
        "n_runs": int(scores.shape[0]), "n_tasks": int(scores.shape[1]),
    }


def iqm_difference(a: np.ndarray, b: np.ndarray, reps: int, seed: int,
                   confidence: float = 0.95) -> tuple[float, float, float]:
    """IQM(a) - IQM(b) of two ``[runs, tasks]`` score matrices from independent runs, with a
    percentile CI from rliable's stratified bootstrap of each (runs resampled per task)."""
    point, ci = _rliable_intervals([np.asarray(a, dtype=float), np.asarray(b, dtype=float)],
                                   lambda x, y: np.array([aggregate_iqm(x) - aggregate_iqm(y)]), reps, seed, confidence)
    return float(point[0]), float(ci[0, 0]), float(ci[1, 0])


def _rliable_intervals(scores, func, reps: int, seed: int, confidence: float):
    """``rliable.library.get_interval_estimates`` of one score matrix (or a list of independent
    ones): the point estimates and their [2, k] percentile CIs, the same for the same ``seed``."""
    from rliable import library

    with _global_numpy_seed(seed), warnings.catch_warnings():
        # arch deprecates random_state in favour of `seed`; rliable 1.2.0 only knows random_state.
        warnings.filterwarnings("ignore", message="random_state is deprecated", category=FutureWarning)
        points, intervals = library.get_interval_estimates(
            {"scores": scores}, func, reps=reps, confidence_interval_size=confidence,
            random_state=np.random.RandomState(seed))
    return points["scores"], intervals["scores"]


def _check_records(records: pandas.DataFrame) -> None:
    """Reject inputs that would otherwise give a plausible-looking but wrong figure."""
    missing = [c for c in RECORD_COLUMNS if c not in records.columns]
    if missing:
        raise ValueError(f"records lack columns {missing}; need {list(RECORD_COLUMNS)}")
    if records.empty:
        raise ValueError("records are empty")
    success = records["success"].to_numpy(dtype=float)
    if not np.all(np.isfinite(success)):
        raise ValueError("records contain a NaN or infinite success rate")
    if np.any((success < 0) | (success > 1)):
        raise ValueError("success rates must lie in [0, 1]")
    dup = records.duplicated(["label", "task", "seed"], keep=False)
    if dup.any():
        first = records.loc[dup, ["label", "task", "seed"]].iloc[0].to_dict()
        raise ValueError(f"duplicate (label, task, seed) rows in records, e.g. {first}")


def score_matrix(records: pandas.DataFrame, label: str, value: str = "success") -> tuple[np.ndarray, list]:
    """The ``[seeds, tasks]`` matrix of one label (rows sorted by seed, tasks as first seen).

    Raises ValueError naming the label when some task lacks some seed: padding or dropping
    would quietly change what the bootstrap resamples.
    """
    sub = records[records["label"] == label]
    if sub.empty:
        raise ValueError(f"no records for label {label!r}")
    tasks = list(dict.fromkeys(sub["task"]))
    wide = sub.pivot(index="seed", columns="task", values=value).reindex(columns=tasks).sort_index()
    if wide.isna().to_numpy().any():
        holes = [(task, seed) for task in tasks for seed in wide.index if np.isnan(wide.at[seed, task])]
        raise ValueError(f"label {label!r}: ragged seeds x tasks matrix, missing (task, seed) "
                         f"{holes[:5]}{' ...' if len(holes) > 5 else ''}")
    return wide.to_numpy(dtype=float), tasks


def normalise_records(records: pandas.DataFrame, normalise_by: str) -> tuple[pandas.DataFrame, list]:
    """Divide each success by the ``normalise_by`` entry's mean-over-seeds success on that task.

    Returns the normalised records (same columns) and the tasks dropped because the reference
    solves them 0 % of the time (the ratio is undefined there). A label's task that the reference
    never ran is an error, since silently dropping it changes the task set being compared.
    """
    _check_records(records)
    ref = records[records["label"] == normalise_by]
    if ref.empty:
        raise ValueError(f"normalise_by={normalise_by!r} is not a label in records")
    score_matrix(records, normalise_by)  # the reference itself must not be ragged
    ref_mean = ref.groupby("task", sort=False)["success"].mean()
    unknown = sorted(set(records["task"]) - set(ref_mean.index), key=str)
    if unknown:
        raise ValueError(f"tasks {unknown} have no {normalise_by!r} reference to normalise by")
    dropped = [task for task, value in ref_mean.items() if value == 0]
    out = records[~records["task"].isin(dropped)].reset_index(drop=True)
    out["success"] = out["success"].to_numpy(dtype=float) / out["task"].map(ref_mean).to_numpy(dtype=float)
    return out, dropped


def per_seed_means(records: pandas.DataFrame) -> pandas.DataFrame:
    """Mean over tasks of each (label, seed): the per-seed spread Figure 1 shows as dots."""
    return (records.groupby(["label", "seed"], sort=False)["success"].mean()
            .reset_index())


def _summary_row(label: str, scale: str, scores: np.ndarray | None, reps: int, seed: int,
                 reference: str, note: str) -> dict:
    if scores is None or scores.size == 0:
        stats = {k: float("nan") for k in SUMMARY_COLUMNS[2:9]} | {"n_runs": 0, "n_tasks": 0}
    else:
        stats = interval_estimates(scores, reps=reps, seed=seed)
    return {"label": label, "scale": scale, **stats, "reference": reference, "note": note}


def summarise(records: pandas.DataFrame, normalise_by: str | None, reps: int, seed: int) -> pandas.DataFrame:
    """One row per (label, scale): IQM/mean with stratified-bootstrap 95 % CIs, plus std and counts.

    Rows: all ``raw`` rows in label order (as first seen in ``records``), then, if
    ``normalise_by`` is given, all ``normalised`` rows in the same order. Every label is
    bootstrapped with the same ``seed`` so any single row can be reproduced on its own.

    Normalisation divides by the reference's per-task mean over seeds. Tasks where that mean is
    0 are dropped from every normalised row; this is logged as a warning and written into the
    ``note`` column, whose text a reader of the CSV then sees. ``reference`` holds the
    ``normalise_by`` label on normalised rows ("" on raw rows), so the table is self-describing.
    """
    import pandas as pd

    _check_records(records)
    labels = list(dict.fromkeys(records["label"]))
    rows = [_summary_row(label, "raw", score_matrix(records, label)[0], reps, seed, "", "")
            for label in labels]
    if normalise_by is not None:
        normalised, dropped = normalise_records(records, normalise_by)
        note = ""
        if dropped:
            note = f"dropped tasks with zero {normalise_by!r} success: {', '.join(map(str, dropped))}"
            log.warning("normalised scale: %s", note)
        for label in labels:
            if (normalised["label"] == label).any():
                scores = score_matrix(normalised, label)[0]
            else:
                scores = None
            rows.append(_summary_row(label, "normalised", scores, reps, seed, normalise_by, note))
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def mean_confidence_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean of a few per-seed values with its Student-t confidence interval (the interval for a
    mean of a handful of seeds; with one value, the interval is the value itself)."""
    from scipy import stats

    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, mean, mean
    half = float(stats.sem(values) * stats.t.ppf((1 + confidence) / 2, len(values) - 1))
    return mean, mean - half, mean + half
