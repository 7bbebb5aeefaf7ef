# Stage 3: latent action models. One job per run: runs/lam/{method}/{target}/ld{dim}/s{seed}/.
# A job reads the train rollouts of every task (and, for method `target`, the target files) and
# resumes from its checkpoint when restarted.

from promptlam.lam.train import all_runs

LAM_RUNS = all_runs(CFG)


wildcard_constraints:
    method="lapo|lapo-clean|laom|target",
    dim=r"\d+",
    seed=r"\d+",


def lam_inputs(wildcards):
    inputs = {"rollouts": expand("data/rollouts/train/{task}.h5", task=TASKS)}
    if wildcards.method == "target":
        inputs["targets"] = expand("data/targets/{target}/{task}.h5", target=wildcards.target, task=TASKS)
    return inputs


def run_section(wildcards, *stages):
    """What a LAM run (and the stages after it, named by their sections) depends on: seed, tasks,
    the lam section and the run's target entry (not other targets)."""
    section = CFG.section("seed", "tasks", "lam", *stages)
    section["lam"]["runs"] = []  # the list of runs to train does not change any one run
    target = getattr(wildcards, "target", None)
    if target in CFG.targets:
        section["targets"] = {target: CFG.targets[target].model_dump(mode="json")}
    return config_json(section)


rule lam:
    input:
        unpack(lam_inputs),
    output:
        metrics="runs/lam/{method}/{target}/ld{dim}/s{seed}/metrics.json",
        model="runs/lam/{method}/{target}/ld{dim}/s{seed}/model.safetensors",
    params:
        config=run_section,
        folder=lambda wildcards, output: os.path.dirname(output.metrics),
    log:
        "logs/lam/{method}/{target}/ld{dim}/s{seed}.log",
    benchmark:
        "benchmarks/lam/{method}/{target}/ld{dim}/s{seed}.tsv"
    threads: 2
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=720,
    shell:
        "{PROMPTLAM} lam train --method {wildcards.method} --target {wildcards.target}"
        " --latent-dim {wildcards.dim} --seed {wildcards.seed} --out {params.folder}"
        " --config-json {params.config:q} > {log} 2>&1"


rule lam_all:
    input:
        [f"{run.path}/metrics.json" for run in LAM_RUNS],
