# Stage 4: behaviour cloning, the few-label action decoders and online evaluation
# (paths: promptlam.runs).
#   {LAM_RUN}/bc/                                  latent policy of a LAM run
#   {LAM_RUN}/decoder/n{budget}/                   its decoder and eval-{background}.json (one job: all)
#   runs{screen}/bc-actions/s{seed}/               true-action BC and eval-{background}.json
#   ({screen}: empty, or /screen{N} for screening runs on N train trajectories)
#   runs/random-actions/eval-{background}.json     uniform random actions: the floor
# A policy uses the seed of its LAM run. Each job checks its inputs' config records.

from promptlam.runs import BC_ACTIONS_RUN, RANDOM_ACTIONS_RUN

# Evaluation runs one env per process, as many as the job has threads, and every background split
# of `evaluation.backgrounds` in one job (one file each: `evaluations`, rules/common.smk).
# Not sized from --cores: a SLURM run has none (profiles set their own with set-threads, and
# Snakemake caps a local job's threads at --cores).
EVAL_THREADS = CFG.evaluation.workers or 8


rule bc_latent:
    input:
        rollouts=TRAIN_ROLLOUTS,
        lam=f"{LAM_RUN}/model.safetensors",
    output:
        f"{LAM_RUN}/bc/policy.safetensors",
    log:
        "logs{screen}/bc/{method}/{target}/{formulation}/ld{dim}/s{seed}.log",
    benchmark:
        "benchmarks{screen}/bc/{method}/{target}/{formulation}/ld{dim}/s{seed}.tsv"
    threads: 2
    resources:
        gpu=GPU,
        mem_mb=8000,
        runtime=360,
    params:
        config=lambda wildcards: run_section(wildcards, "bc"),
        args=run_args,
        lam=lambda wildcards, input: os.path.dirname(input.lam),
        folder=lambda wildcards, output: os.path.dirname(output[0]),
    shell:
        "promptlam policy bc {params.args} --rollouts {input.rollouts} --lam {params.lam}"
        " --out {params.folder} --config-json {params.config:q} > {log} 2>&1"


rule bc_actions:
    input:
        rollouts=TRAIN_ROLLOUTS,
    output:
        f"{BC_ACTIONS_RUN}/policy.safetensors",
    log:
        "logs{screen}/bc/bc-actions/s{seed}.log",
    benchmark:
        "benchmarks{screen}/bc/bc-actions/s{seed}.tsv"
    threads: 2
    resources:
        gpu=GPU,
        mem_mb=8000,
        runtime=360,
    params:
        config=lambda wildcards: run_section(wildcards, "bc"),
        folder=lambda wildcards, output: os.path.dirname(output[0]),
        screening=screening_arg,
    shell:
        "promptlam policy bc --method bc-actions --seed {wildcards.seed}{params.screening} --rollouts {input.rollouts}"
        " --out {params.folder} --config-json {params.config:q} > {log} 2>&1"


rule decoder:
    input:
        rollouts=TRAIN_ROLLOUTS,
        labelled=expand(LABELLED, budget="{budget}", task=TASKS, allow_missing=True),
        policy=f"{LAM_RUN}/bc/policy.safetensors",
    output:
        f"{LAM_RUN}/decoder/n{{budget}}/decoder.safetensors",
    log:
        "logs{screen}/decoder/{method}/{target}/{formulation}/ld{dim}/s{seed}/n{budget}.log",
    benchmark:
        "benchmarks{screen}/decoder/{method}/{target}/{formulation}/ld{dim}/s{seed}/n{budget}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        config=lambda wildcards: run_section(wildcards, "bc", "decoder"),
        args=run_args,
        policy=lambda wildcards, input: os.path.dirname(input.policy),
        folder=lambda wildcards, output: os.path.dirname(output[0]),
    shell:
        "promptlam policy decoder {params.args} --budget {wildcards.budget} --rollouts {input.rollouts}"
        " --labelled {input.labelled} --policy {params.policy} --out {params.folder}"
        " --config-json {params.config:q} > {log} 2>&1"


# Evaluation reads the render settings from the rollout files; its own keys are `evaluation`.
rule evaluate_latent:
    input:
        rollouts=TRAIN_ROLLOUTS,
        policy=f"{LAM_RUN}/bc/policy.safetensors",
        decoder=f"{LAM_RUN}/decoder/n{{budget}}/decoder.safetensors",
    output:
        evaluations(f"{LAM_RUN}/decoder/n{{budget}}"),
    log:
        "logs{screen}/evaluate/{method}/{target}/{formulation}/ld{dim}/s{seed}/n{budget}.log",
    benchmark:
        "benchmarks{screen}/evaluate/{method}/{target}/{formulation}/ld{dim}/s{seed}/n{budget}.tsv"
    threads: EVAL_THREADS
    resources:
        mem_mb=2000,
        runtime=240,
    params:
        backgrounds=BACKGROUNDS,
        config=lambda wildcards: run_section(
            wildcards, "bc", "decoder", "evaluation", "render"
        ),
        args=run_args,
        policy=lambda wildcards, input: os.path.dirname(input.policy),
        decoder=lambda wildcards, input: os.path.dirname(input.decoder),
    shell:
        "promptlam policy evaluate {params.args} --budget {wildcards.budget} --backgrounds {params.backgrounds}"
        " --rollouts {input.rollouts} --policy {params.policy} --decoder {params.decoder} --workers {threads}"
        " --out {output} --config-json {params.config:q} > {log} 2>&1"


rule evaluate_actions:
    input:
        rollouts=TRAIN_ROLLOUTS,
        policy=f"{BC_ACTIONS_RUN}/policy.safetensors",
    output:
        evaluations(BC_ACTIONS_RUN),
    log:
        "logs{screen}/evaluate/bc-actions/s{seed}.log",
    benchmark:
        "benchmarks{screen}/evaluate/bc-actions/s{seed}.tsv"
    threads: EVAL_THREADS
    resources:
        mem_mb=2000,
        runtime=240,
    params:
        backgrounds=BACKGROUNDS,
        config=lambda wildcards: run_section(wildcards, "bc", "evaluation", "render"),
        policy=lambda wildcards, input: os.path.dirname(input.policy),
        screening=screening_arg,
    shell:
        "promptlam policy evaluate --method bc-actions --seed {wildcards.seed}{params.screening} --backgrounds {params.backgrounds}"
        " --rollouts {input.rollouts} --policy {params.policy} --workers {threads}"
        " --out {output} --config-json {params.config:q} > {log} 2>&1"


rule evaluate_random:
    input:
        rollouts=TRAIN_ROLLOUTS,
    output:
        evaluations(RANDOM_ACTIONS_RUN),
    log:
        "logs/evaluate/random-actions.log",
    benchmark:
        "benchmarks/evaluate/random-actions.tsv"
    threads: EVAL_THREADS
    resources:
        mem_mb=2000,
        runtime=240,
    params:
        backgrounds=BACKGROUNDS,
        config=lambda wildcards: run_section(wildcards, "evaluation", "render"),
    shell:
        "promptlam policy random --backgrounds {params.backgrounds} --rollouts {input.rollouts}"
        " --workers {threads} --out {output} --config-json {params.config:q} > {log} 2>&1"
