# Stage 1: Distracting MetaWorld rollouts, labelled subsets and previews.
# One job per task and split: one rendering env (one GL context) per process.

ROLLOUT_SPLITS = ["train"] + (["eval"] if CFG.rollouts.eval_trajectories > 0 else [])


wildcard_constraints:
    split="train|eval",
    task="[a-z0-9-]+-v3",
    budget=r"\d+",


rule rollouts:
    output:
        ROLLOUTS,
    log:
        "logs/rollouts/{split}/{task}.log",
    benchmark:
        "benchmarks/rollouts/{split}/{task}.tsv"
    threads: 1
    resources:
        mem_mb=1024,
        runtime=240,
    params:
        config=config_json(CFG.rollout_section()),
    shell:
        "promptlam rollouts collect --task {wildcards.task} --split {wildcards.split}"
        " --out {output} --config-json {params.config:q} > {log} 2>&1"


rule labelled_subset:
    input:
        ROLLOUTS.format(split="train", task="{task}"),
    output:
        LABELLED,
    log:
        "logs/labelled/{budget}/{task}.log",
    resources:
        mem_mb=512,
        runtime=10,
    params:
        config=section_json("seed"),
    shell:
        "promptlam rollouts labelled --source {input} --budget {wildcards.budget}"
        " --out {output} --config-json {params.config:q} > {log} 2>&1"


rule rollout_preview:
    input:
        ROLLOUTS,
    output:
        sheet="data/previews/{split}/{task}.png",
        gif="data/previews/{split}/{task}.gif",
    log:
        "logs/previews/{split}/{task}.log",
    resources:
        mem_mb=512,
        runtime=10,
    shell:
        "promptlam rollouts preview --source {input} --sheet {output.sheet}"
        " --gif {output.gif} > {log} 2>&1"


rule rollouts_all:
    input:
        expand(ROLLOUTS, split=ROLLOUT_SPLITS, task=TASKS),
        expand(LABELLED, budget=CFG.rollouts.labelled_budgets, task=TASKS),
        expand("data/previews/{split}/{task}.png", split=ROLLOUT_SPLITS, task=TASKS),
