# Stage 3: latent action models. One job per run: runs/lam/{method}/{target}/{formulation}/ld{dim}/s{seed}/
# (promptlam.runs.LAM_RUN). A job reads the train rollouts of every task (and, for vector-head
# methods, the target files) and resumes from its checkpoint when restarted.

from promptlam.methods import FORMULATIONS, METHODS
from promptlam.runs import (
    LAM_RUN,
    SCREEN_PATTERN,
    RunKey,
    all_runs,
    screen_trajectories,
)

LAM_RUNS = all_runs(CFG)


wildcard_constraints:
    method="|".join(METHODS),
    formulation="|".join(FORMULATIONS),
    dim=r"\d+",
    seed=r"\d+",
    # empty for runs on all the data, /screen{N} for screening runs (promptlam.runs.LAM_RUN)
    screen=SCREEN_PATTERN,


def run_key(wildcards, seed=None):
    return RunKey(
        wildcards.method,
        wildcards.target,
        wildcards.formulation,
        int(wildcards.dim),
        int(wildcards.seed) if seed is None else seed,
        screen_trajectories(wildcards.screen),
    )


def lam_inputs(wildcards):
    inputs = {"rollouts": TRAIN_ROLLOUTS}
    # a run's inputs do not depend on its seed (lam_seeds has no seed wildcard)
    targets = run_key(wildcards, seed=0).target_paths(CFG)
    if targets:
        inputs["targets"] = [str(path) for path in targets]
    return inputs


def run_section(wildcards, *stages):
    """What a LAM run (and the stages after it, named by their sections) depends on: seed, tasks,
    the lam section and the run's target entry (not other targets)."""
    section = CFG.section("seed", "tasks", "lam", *stages)
    section["lam"]["runs"] = []  # the list of runs to train does not change any one run
    section["lam"].pop("batch_seeds", None)  # nor does which seeds share a process
    target = getattr(wildcards, "target", None)
    if target in CFG.targets:
        section["targets"] = {target: CFG.targets[target].model_dump(mode="json")}
    return config_json(section)


def screening_arg(wildcards):
    """`--screening N` for a screening run's jobs, nothing for runs on all the data."""
    trajectories = screen_trajectories(wildcards.screen)
    return "" if trajectories is None else f" --screening {trajectories}"


def run_args(wildcards, seeds=None):
    """The CLI arguments that name a LAM run (or, with ``seeds``, the runs of those seeds)."""
    seeds = " ".join(map(str, seeds)) if seeds else wildcards.seed
    return (
        f"--method {wildcards.method} --target {wildcards.target} --formulation {wildcards.formulation}"
        f" --latent-dim {wildcards.dim} --seed {seeds}{screening_arg(wildcards)}"
    )


rule lam:
    input:
        unpack(lam_inputs),
    output:
        metrics=f"{LAM_RUN}/metrics.json",
        model=f"{LAM_RUN}/model.safetensors",
    log:
        "logs{screen}/lam/{method}/{target}/{formulation}/ld{dim}/s{seed}.log",
    benchmark:
        "benchmarks{screen}/lam/{method}/{target}/{formulation}/ld{dim}/s{seed}.tsv"
    # The longest jobs: started before any policy work so that none is left running alone at the end.
    priority: 1
    threads: 2
    resources:
        gpu=GPU,
        mem_mb=8000,
        runtime=720,
    params:
        config=run_section,
        args=run_args,
        targets=lambda wildcards, input: (
            f"--targets {' '.join(input.targets)}" if "targets" in input.keys() else ""
        ),
        folder=lambda wildcards, output: os.path.dirname(output.metrics),
    shell:
        "{PROMPTLAM} lam train {params.args} --rollouts {input.rollouts} {params.targets}"
        " --out {params.folder} --config-json {params.config:q} > {log} 2>&1"


# lam.batch_seeds: the runs of those seeds, one job per method/target/formulation/dim
# (docs/benchmarks.md, "Sweeps of small LAM runs"); other seeds keep the one-run jobs above.
BATCH_SEEDS = CFG.lam.batch_seeds
if BATCH_SEEDS:

    rule lam_seeds:
        input:
            unpack(lam_inputs),
        output:
            metrics=expand(
                f"{LAM_RUN}/metrics.json", seed=BATCH_SEEDS, allow_missing=True
            ),
            model=expand(
                f"{LAM_RUN}/model.safetensors", seed=BATCH_SEEDS, allow_missing=True
            ),
        log:
            "logs{screen}/lam/{method}/{target}/{formulation}/ld{dim}/seeds.log",
        benchmark:
            "benchmarks{screen}/lam/{method}/{target}/{formulation}/ld{dim}/seeds.tsv"
        priority: 1
        threads: 2
        resources:
            gpu=GPU,
            mem_mb=8000,
            runtime=720 * len(BATCH_SEEDS),
        params:
            config=run_section,
            args=lambda wildcards: run_args(wildcards, BATCH_SEEDS),
            targets=lambda wildcards, input: (
                f"--targets {' '.join(input.targets)}"
                if "targets" in input.keys()
                else ""
            ),
            folders=lambda wildcards, output: " ".join(
                os.path.dirname(path) for path in output.metrics
            ),
        shell:
            "{PROMPTLAM} lam train {params.args} --rollouts {input.rollouts} {params.targets}"
            " --out {params.folders} --config-json {params.config:q} > {log} 2>&1"

    ruleorder: lam_seeds > lam


rule lam_all:
    input:
        [f"{run.path}/metrics.json" for run in LAM_RUNS],
