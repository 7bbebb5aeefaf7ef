"""End to end: the workflow on the smoke profile, run by Snakemake as a user would run it."""

import sys

import imageio.v3 as iio
import pytest

from promptlam.config import load_config
from promptlam.data.labelled import LabelledSubset
from promptlam.data.rollout_file import RolloutFile

from conftest import REPO, smoke_snakemake as snakemake

pytestmark = pytest.mark.workflow


def test_rollout_rules_build_every_artifact(smoke_run):
    config = load_config([REPO / "config.yaml", REPO / "profiles/smoke/smoke.yaml"])
    for task in config.tasks:
        for split, count in (("train", config.rollouts.train_trajectories), ("eval", config.rollouts.eval_trajectories)):
            with RolloutFile(smoke_run / f"data/rollouts/{split}/{task}.h5") as f:
                assert (f.task, f.split, f.n_trajectories, f.resolution) == (task, split, count, 64)
                assert f["frames/distracted"].shape[0] == f.n_frames
            sheet = iio.imread(smoke_run / f"data/previews/{split}/{task}.png")
            assert sheet.ndim == 3 and sheet.shape[0] > 64
            assert (smoke_run / f"data/previews/{split}/{task}.gif").stat().st_size > 0
            assert (smoke_run / f"benchmarks/rollouts/{split}/{task}.tsv").read_text().startswith("s\t")
            assert (smoke_run / f"logs/rollouts/{split}/{task}.log").exists()
        with RolloutFile(smoke_run / f"data/rollouts/train/{task}.h5") as rollouts:
            for budget in config.rollouts.labelled_budgets:
                subset = LabelledSubset(smoke_run / f"data/labelled/{budget}/{task}.h5", rollouts)
                assert len(subset.trajectories) == budget


def test_target_rules_build_every_target_of_every_task(smoke_run):
    from promptlam.data.target_file import TargetFile

    config = load_config([REPO / "config.yaml", REPO / "profiles/smoke/smoke.yaml"])
    assert "molmo-7b-d-focus" not in config.targets  # removed by the profile: no hub downloads
    for name, target in config.targets.items():
        for task in config.tasks:
            with RolloutFile(smoke_run / f"data/rollouts/train/{task}.h5") as rollouts, \
                    TargetFile(smoke_run / f"data/targets/{name}/{task}.h5", rollouts) as result:
                assert result.kind == target.kind and result.targets.shape[0] == rollouts.n_frames
                assert (smoke_run / f"benchmarks/targets/{name}/{task}.tsv").exists()
    assert (smoke_run / "models/tiny/molmo2/config.json").exists()


def test_lam_rules_train_and_probe_every_run(smoke_run):
    import json

    from promptlam.runs import all_runs

    config = load_config([REPO / "config.yaml", REPO / "profiles/smoke/smoke.yaml"])
    runs = all_runs(config)
    assert {run.method for run in runs} >= {"lapo", "lapo-clean", "target"}
    assert {run.formulation for run in runs} == {"absolute", "delta", "conditioned"}
    for run in runs:
        metrics = json.loads((smoke_run / run.path / "metrics.json").read_text())
        assert metrics["steps"] == config.lam.steps
        assert metrics["heldout_probe"]["action_xyz"]["variance"] > 0
        assert metrics["heldout_probe"]["residual"]["action+state"] >= 0
        assert (smoke_run / f"benchmarks/lam/{run.method}/{run.target}/{run.formulation}/ld{run.latent_dim}"
                            f"/s{run.seed}.tsv").exists()
    import pandas as pd

    table = pd.read_csv(smoke_run / "tables/lam_probes.csv")
    assert set(table.method) == {run.method for run in runs} and (table.seeds == 1).all()
    assert {"latent", "latent+state", "state", "untrained_latent", "action+state"} <= set(table.feature)
    assert {"action_xyz", "residual", "hand_change"} <= set(table.predicts)
    assert (smoke_run / "figures/lam_probes.pdf").read_bytes().startswith(b"%PDF")


def test_fig1_is_built_from_every_stage(smoke_run):
    import json

    import pandas as pd

    from promptlam.figures import RANDOM_LABEL, comparison_points, fig1_evaluations, sweep_points

    config = load_config([REPO / "config.yaml", REPO / "profiles/smoke/smoke.yaml"])
    assert (smoke_run / "figures/fig1.pdf").read_bytes().startswith(b"%PDF")
    table = pd.read_csv(smoke_run / "figures/fig1.csv")
    labels = [entry.label for entry in config.figures.fig1.entries]
    backgrounds = config.evaluation.backgrounds
    assert sorted(set(table.background)) == sorted(backgrounds) == ["eval", "train"]
    for background in backgrounds:
        raw = table[(table.scale == "raw") & (table.background == background)]
        assert list(raw.label) == [*labels, RANDOM_LABEL]
        assert (raw[raw.label != RANDOM_LABEL].n_runs == len(config.figures.fig1.seeds)).all()
        assert ((raw.iqm_low <= raw.iqm + 1e-9) & (raw.iqm <= raw.iqm_high + 1e-9)).all()
    for background, entries in fig1_evaluations(config).items():
        for label, paths in entries.items():
            for path in paths:
                result = json.loads((smoke_run / path).read_text())
                assert result["background"] == background
                for task in config.tasks:
                    episodes = result["tasks"][task]["episodes"]
                    assert len(episodes) == config.evaluation.episodes
                    assert result["tasks"][task]["success_rate"] == sum(e["success"] for e in episodes) / len(episodes)
                videos = sorted((smoke_run / path).parent.glob(f"videos/*-{background}-*.gif"))
                assert len(videos) == len(config.tasks) * config.evaluation.videos
    policies = {path.rsplit("/", 1)[0] for entries in fig1_evaluations(config).values()
                for paths in entries.values() for path in paths}
    policies |= {point.key.eval_path(point.budget, "eval").rsplit("/", 1)[0]
                 for name in config.figures.sweeps for point in sweep_points(config, name)}
    policies |= {point.key.eval_path(point.budget, "eval").rsplit("/", 1)[0]
                 for name, comparison in config.figures.comparisons.items() if "success" in comparison.metrics
                 for point in comparison_points(config, name)}
    # One evaluation job per policy (every background split) of Figure 1, the sweeps and the
    # comparisons, and one for the random floor.
    assert len(list((smoke_run / "benchmarks/evaluate").rglob("*.tsv"))) == len(policies) + 1


def test_rerun_has_nothing_to_do(smoke_run):
    run = snakemake(smoke_run, "--dry-run")
    assert run.returncode == 0
    assert "Nothing to be done" in run.stdout + run.stderr


def test_workflow_times_reads_every_job_of_the_run(smoke_run):
    import importlib.util

    spec = importlib.util.spec_from_file_location("workflow_times", REPO / "bench/workflow_times.py")
    workflow_times = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = workflow_times  # its dataclass looks its module up there
    spec.loader.exec_module(workflow_times)
    log = sorted((smoke_run / ".snakemake/log").glob("*.snakemake.log"))[0]
    jobs = workflow_times.read_log(log)
    assert len(jobs) == log.read_text().count("Finished jobid:")
    assert {"rollouts", "lam", "fig1"} <= {job.rule for job in jobs}
    wall, held, _ = workflow_times.utilisation(jobs, cores=2)
    assert 0 < held <= 2 * (wall + 1)
    stages = {row["stage"]: row for row in workflow_times.stage_table(smoke_run)}
    # screening runs are a stage of their own, "lam (screen4)"
    lam_jobs = sum(row["jobs"] for name, row in stages.items() if name.split()[0] == "lam")
    assert lam_jobs == sum(job.rule == "lam" for job in jobs) and "lam (screen4)" in stages


def test_every_sweep_figure_is_built_with_the_rows_its_config_implies(smoke_run):
    import pandas as pd

    config = load_config([REPO / "config.yaml", REPO / "profiles/smoke/smoke.yaml"])
    assert list(config.figures.sweeps) == ["smoke-latent-dim", "smoke-labelled-budget"]
    for name, sweep in config.figures.sweeps.items():
        assert (smoke_run / f"figures/{name}.pdf").read_bytes().startswith(b"%PDF")
        table = pd.read_csv(smoke_run / f"figures/{name}.csv", keep_default_na=False)
        lines = sum(len(sweep.values) if entry.method != "bc-actions" else 1 for entry in sweep.entries)
        probes = sum(len(sweep.values) for entry in sweep.entries if entry.method != "bc-actions")
        expected = lines * len(config.evaluation.backgrounds) + (probes if sweep.axis == "latent_dim" else 0)
        assert len(table) == expected and set(table.figure) == {name}
        assert ((table.low <= table.estimate + 1e-9) & (table.estimate <= table.high + 1e-9)).all()


def test_every_comparison_and_the_summary_are_built_with_the_rows_their_config_implies(smoke_run):
    import pandas as pd

    from promptlam.summary import CLAIMS

    config = load_config([REPO / "config.yaml", REPO / "profiles/smoke/smoke.yaml"])
    assert list(config.figures.comparisons) == ["smoke-benchmark", "smoke-prompts", "smoke-formulation",
                                                "smoke-related-work", "smoke-architecture"]
    for name, comparison in config.figures.comparisons.items():
        assert (smoke_run / f"figures/{name}.pdf").read_bytes().startswith(b"%PDF")
        assert (smoke_run / f"tables/{name}.tex").read_text().startswith("\\begin{tabular}")
        table = pd.read_csv(smoke_run / f"figures/{name}.csv", keep_default_na=False)
        bars = len(config.comparison_targets(name)) * max(len(comparison.values), 1) + len(comparison.entries)
        panels = len(comparison.probes) + ("success" in comparison.metrics) * len(config.evaluation.backgrounds)
        assert len(table) == bars * panels and set(table.figure) == {name}
        assert ((table.low <= table.estimate + 1e-9) & (table.estimate <= table.high + 1e-9)).all()
    benchmark = pd.read_csv(smoke_run / "figures/smoke-benchmark.csv", keep_default_na=False)
    assert set(benchmark.target) >= {"tiny-molmo2-focus", "tiny-clip", "efficientnet-lite0", "pixels", "clean"}
    prompts = pd.read_csv(smoke_run / "figures/smoke-prompts.csv", keep_default_na=False)
    assert sorted(set(prompts.label)) == ["A", "B"] and prompts.target.str.contains("+", regex=False).any()
    summary = pd.read_csv(smoke_run / "tables/summary.csv", keep_default_na=False)
    assert set(summary.claim) == set(CLAIMS)
    assert set(summary.agrees) <= {"yes", "no", "unclear", "not assessed"}
    text = (smoke_run / "tables/summary.txt").read_text()
    assert text.startswith("The paper's claims") and text in (smoke_run / "snakemake-output.txt").read_text()


def test_batch_seeds_train_a_runs_seeds_in_one_job_with_the_same_weights(smoke_run, tmp_path):
    import shutil

    from safetensors.torch import load_file

    workdir = tmp_path / "batched"
    shutil.copytree(smoke_run, workdir, symlinks=True)  # a copy: the other tests read smoke_run as built
    run = "runs/lam/lapo-clean/clean/absolute/ld16"
    (workdir / f"{run}/s0/checkpoint.pt").unlink()  # seed 0 is trained again, from its first step
    batched = tmp_path / "batched.yaml"
    batched.write_text("lam:\n  batch_seeds: [0, 1]\n")
    # (--configfile replaces the profile's config file: both are named)
    result = snakemake(workdir, f"{run}/s1/metrics.json",
                       "--configfile", str(REPO / "profiles/smoke/smoke.yaml"), str(batched))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "rule lam_seeds:" in output and "rule lam:" not in output  # one job, both seeds
    assert "--seed 0 1" in output
    assert (workdir / "logs/lam/lapo-clean/clean/absolute/ld16/seeds.log").exists()
    assert (workdir / f"{run}/s1/model.safetensors").exists()
    before, after = (load_file(root / f"{run}/s0/model.safetensors") for root in (smoke_run, workdir))
    assert before.keys() == after.keys()
    assert all(before[key].equal(after[key]) for key in before)


def test_the_report_holds_every_figure_with_its_caption_and_numbers(smoke_run):
    import html
    import re

    config = load_config([REPO / "config.yaml", REPO / "profiles/smoke/smoke.yaml"])
    run = snakemake(smoke_run, "--report", "report.html")
    assert run.returncode == 0, run.stderr[-3000:]
    report = html.unescape((smoke_run / "report.html").read_text())
    names = ["fig1", "lam_probes", *config.figures.sweeps, *config.figures.comparisons, "screening_transfer"]
    for name in names:
        assert re.search(rf"figures/{re.escape(name)}\.pdf", report), name
    assert "tables/summary.csv" in report and "figures/fig1.csv" in report  # the numbers beside the figures
    # each caption rendered (report/*.rst), with the figure's config entry as a literal block
    assert re.search(r"Comparison <tt[^>]*><span[^>]*>smoke-benchmark</span></tt>: targets", report)
    assert re.search(r'literal-block[^{]*\{[^"]*"bootstrap_reps": 1000', report)
    assert "The paper's stated claims beside this run's measurements" in report
