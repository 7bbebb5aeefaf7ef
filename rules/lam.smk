# Stage 3: latent action models. One job per run: runs/lam/{method}/{target}/{formulation}/ld{dim}/s{seed}/
# (promptlam.runs.LAM_RUN). A job reads the train rollouts of every task (and, for vector-head
# methods, the target files) and resumes from its checkpoint when restarted.

from promptlam.methods import FORMULATIONS, METHODS
from promptlam.runs import LAM_RUN, SCREEN_PATTERN, all_runs

LAM_RUNS = all_runs(CFG)


wildcard_constraints:
    method="|".join(METHODS),
    formulation="|".join(FORMULATIONS),
    dim=r"\d+",
    seed=r"\d+",
    # empty for runs on all the data, /screen{N} for screening runs (promptlam.runs.LAM_RUN)
    screen=SCREEN_PATTERN,


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
        targets=targets_arg,
        folder=lambda wildcards, output: os.path.dirname(output.metrics),
    shell:
        "promptlam lam train {params.args} --rollouts {input.rollouts} {params.targets}"
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
            targets=targets_arg,
            folders=lambda wildcards, output: " ".join(
                os.path.dirname(path) for path in output.metrics
            ),
        shell:
            "promptlam lam train {params.args} --rollouts {input.rollouts} {params.targets}"
            " --out {params.folders} --config-json {params.config:q} > {log} 2>&1"

    ruleorder: lam_seeds > lam


rule lam_all:
    input:
        [f"{run.path}/metrics.json" for run in LAM_RUNS],
