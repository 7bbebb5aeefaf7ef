"""The cost plan counts the jobs Snakemake would run for each figure."""

import re
import subprocess
import sys

import pytest

from promptlam.cli import main
from promptlam.config import load_config
from promptlam.plan import format_plan, model_parameters, plan_table

from conftest import REPO

SMOKE = [REPO / "config.yaml", REPO / "profiles/smoke/smoke.yaml"]
OUTPUTS = {"fig1": "figures/fig1.pdf", "summary": "tables/summary.csv", "lam_probes": "figures/lam_probes.pdf"}


def dry_run_jobs(tmp_path, output):
    """Jobs per rule of a dry run that builds ``output`` from nothing."""
    run = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--profile",
                          str(REPO / "profiles/smoke"), "--directory", str(tmp_path), output, "--dry-run",
                          "--quiet", "rules"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    stats = run.stdout.split("Job stats:")[1].split("total")[0]
    return {rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)$", stats, re.MULTILINE)}


@pytest.mark.parametrize("figure", ["fig1", "smoke-benchmark", "smoke-latent-dim", "smoke-labelled-budget",
                                    "smoke-prompts", "screening_transfer", "summary"])
def test_each_figures_counts_are_the_jobs_snakemake_plans_for_it(tmp_path, figure):
    config = load_config(SMOKE)
    row = plan_table(config, [figure])[0]
    jobs = dry_run_jobs(tmp_path, OUTPUTS.get(figure, f"figures/{figure}.pdf"))
    assert row["target_jobs"] == jobs.get("target", 0)
    assert row["lam_runs"] == jobs.get("lam", 0)
    assert row["bc_policies"] == jobs.get("bc_latent", 0) + jobs.get("bc_actions", 0)
    assert row["decoders"] == jobs.get("decoder", 0)
    evaluation = config.evaluation
    per_job = evaluation.episodes * len(config.tasks) * len(evaluation.backgrounds)
    evaluate_jobs = sum(jobs.get(rule, 0) for rule in ("evaluate_latent", "evaluate_actions", "evaluate_random"))
    assert row["evaluation_episodes"] == evaluate_jobs * per_job


def test_the_total_counts_shared_work_once_and_hours_are_marked_as_estimates():
    config = load_config(SMOKE)
    rows = plan_table(config)
    total = rows[-1]
    assert total["figure"] == "all"
    for column in ("lam_runs", "bc_policies", "target_jobs"):
        assert max(row[column] for row in rows[:-1]) <= total[column] <= sum(row[column] for row in rows[:-1])
    text = format_plan(rows)
    assert "ESTIMATES" in text and "ASSUMED" in text and "measured" in text


def test_model_sizes_are_read_from_hub_names():
    assert model_parameters("allenai/Molmo-7B-D-0924") == 7e9
    assert model_parameters("google/gemma-3-4b-it") == 4e9
    assert model_parameters("HuggingFaceTB/SmolVLM-500M-Instruct") == 5e8
    assert model_parameters("openai/clip-vit-large-patch14") is None


def test_an_unknown_figure_is_one_line(capsys):
    assert main(["plan", "--config", str(SMOKE[0]), "nope"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_gpu_unit_costs_measured_by_bench_gpu_replace_the_assumptions(tmp_path, capsys):
    import pandas as pd

    config = [str(REPO / "config.yaml")]
    assert main(["plan", "--config", *config, "fig1", "--csv", str(tmp_path / "assumed.csv")]) == 0
    capsys.readouterr()
    # What bench/gpu.sh writes (the keys bench/targets.py and bench/lam.py print), at twice the
    # assumed 40% MFU and a fifth of the assumed LAM throughput.
    (tmp_path / "targets-7b-bf16.json").write_text('{"machine": "x86_64, 16 cores, cuda (H100)", "mfu_bf16_h100": 0.8}')
    (tmp_path / "lam-pixels-w0.json").write_text(
        '{"machine": "x86_64, 16 cores, cuda (H100)", "resolution": 128, "batch_size": 512,'
        ' "pipeline_samples_per_s": 4000.0}')
    assert main(["plan", "--config", *config, "fig1", "--measured", str(tmp_path),
                 "--csv", str(tmp_path / "measured.csv")]) == 0
    text = capsys.readouterr().out
    assumed, measured = (pd.read_csv(tmp_path / f"{name}.csv") for name in ("assumed", "measured"))
    assert (measured.target_gpu_hours > 0).all()
    assert measured.target_gpu_hours.tolist() == pytest.approx((assumed.target_gpu_hours / 2).tolist())
    assert measured.lam_gpu_hours.tolist() == pytest.approx((assumed.lam_gpu_hours * 5).tolist())
    assert measured.bc_gpu_hours.tolist() == pytest.approx(assumed.bc_gpu_hours.tolist())
    assert "gpu_flops_per_second = 7.912e+14 FLOP/s (measured: 80% MFU" in text
    assert "bc_gpu_samples_per_second = 20000 samples/s (ASSUMED" in text

    # The loader alone (bench/loader.py's JSON) slower than the training loop: the LAM is loader-bound.
    (tmp_path / "loader.json").write_text('{"pixel": {"samples_per_s": 2000.0, "peak_rss_mb": 900}}')
    assert main(["plan", "--config", *config, "fig1", "--measured", str(tmp_path),
                 "--csv", str(tmp_path / "loader-bound.csv")]) == 0
    text = capsys.readouterr().out
    bound = pd.read_csv(tmp_path / "loader-bound.csv")
    assert bound.lam_gpu_hours.tolist() == pytest.approx((assumed.lam_gpu_hours * 10).tolist())
    assert "lam_gpu_samples_per_second = 2000 samples/s (measured: the loader-bound rate, min(loader 2000," in text
    (tmp_path / "loader.json").write_text('{"pixel": {}}')
    assert main(["plan", "--config", *config, "--measured", str(tmp_path)]) == 2
    assert "loader.json: expected bench/gpu.sh's JSON with a number under 'pixel.samples_per_s'" in capsys.readouterr().err
    (tmp_path / "loader.json").unlink()

    (tmp_path / "lam-pixels-w0.json").unlink()
    assert main(["plan", "--config", *config, "--measured", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "lam-pixels-w0.json: not found" in err
