# Stage 4: behaviour cloning, the few-label action decoders and online evaluation.
#   runs/lam/{method}/{target}/ld{dim}/s{seed}/bc/                  latent policy of a LAM run
#   runs/lam/{method}/{target}/ld{dim}/s{seed}/decoder/n{budget}/   its decoder and eval.json
#   runs/bc-actions/s{seed}/                                        true-action BC and eval.json
# A policy uses the seed of its LAM run. Each job checks its inputs' config records.

LAM_RUN = "runs/lam/{method}/{target}/ld{dim}/s{seed}"
TRAIN_ROLLOUTS = expand("data/rollouts/train/{task}.h5", task=TASKS)


def lam_args(wildcards):
    return (f"--method {wildcards.method} --target {wildcards.target}"
            f" --latent-dim {wildcards.dim} --seed {wildcards.seed}")


rule bc_latent:
    input:
        rollouts=TRAIN_ROLLOUTS,
        lam=f"{LAM_RUN}/model.safetensors",
    output:
        f"{LAM_RUN}/bc/policy.safetensors",
    params:
        config=lambda wildcards: run_section(wildcards, "bc"),
        args=lam_args,
        folder=lambda wildcards, output: os.path.dirname(output[0]),
    log:
        "logs/bc/{method}/{target}/ld{dim}/s{seed}.log",
    benchmark:
        "benchmarks/bc/{method}/{target}/ld{dim}/s{seed}.tsv"
    threads: 2
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=360,
    shell:
        "{PROMPTLAM} policy bc {params.args} --out {params.folder} --config-json {params.config:q} > {log} 2>&1"


rule bc_actions:
    input:
        rollouts=TRAIN_ROLLOUTS,
    output:
        "runs/bc-actions/s{seed}/policy.safetensors",
    params:
        config=lambda wildcards: run_section(wildcards, "bc"),
        folder=lambda wildcards, output: os.path.dirname(output[0]),
    log:
        "logs/bc/bc-actions/s{seed}.log",
    benchmark:
        "benchmarks/bc/bc-actions/s{seed}.tsv"
    threads: 2
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=360,
    shell:
        "{PROMPTLAM} policy bc --method bc-actions --seed {wildcards.seed} --out {params.folder}"
        " --config-json {params.config:q} > {log} 2>&1"


rule decoder:
    input:
        rollouts=TRAIN_ROLLOUTS,
        labelled=expand("data/labelled/{{budget}}/{task}.h5", task=TASKS),
        policy=f"{LAM_RUN}/bc/policy.safetensors",
    output:
        f"{LAM_RUN}/decoder/n{{budget}}/decoder.safetensors",
    params:
        config=lambda wildcards: run_section(wildcards, "bc", "decoder"),
        args=lam_args,
        folder=lambda wildcards, output: os.path.dirname(output[0]),
    log:
        "logs/decoder/{method}/{target}/ld{dim}/s{seed}/n{budget}.log",
    benchmark:
        "benchmarks/decoder/{method}/{target}/ld{dim}/s{seed}/n{budget}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "{PROMPTLAM} policy decoder {params.args} --budget {wildcards.budget} --out {params.folder}"
        " --config-json {params.config:q} > {log} 2>&1"


# Evaluation reads the render settings from the rollout files; its own keys are `evaluation`.
rule evaluate_latent:
    input:
        rollouts=TRAIN_ROLLOUTS,
        policy=f"{LAM_RUN}/bc/policy.safetensors",
        decoder=f"{LAM_RUN}/decoder/n{{budget}}/decoder.safetensors",
    output:
        f"{LAM_RUN}/decoder/n{{budget}}/eval.json",
    params:
        config=lambda wildcards: run_section(wildcards, "bc", "decoder", "evaluation", "render"),
        args=lam_args,
    log:
        "logs/evaluate/{method}/{target}/ld{dim}/s{seed}/n{budget}.log",
    benchmark:
        "benchmarks/evaluate/{method}/{target}/ld{dim}/s{seed}/n{budget}.tsv"
    threads: max(1, min(CFG.evaluation.workers or workflow.cores, workflow.cores))
    resources:
        mem_mb=2000,
        runtime=240,
    shell:
        "{PROMPTLAM} policy evaluate {params.args} --budget {wildcards.budget} --workers {threads}"
        " --out {output} --config-json {params.config:q} > {log} 2>&1"


rule evaluate_actions:
    input:
        rollouts=TRAIN_ROLLOUTS,
        policy="runs/bc-actions/s{seed}/policy.safetensors",
    output:
        "runs/bc-actions/s{seed}/eval.json",
    params:
        config=lambda wildcards: run_section(wildcards, "bc", "evaluation", "render"),
    log:
        "logs/evaluate/bc-actions/s{seed}.log",
    benchmark:
        "benchmarks/evaluate/bc-actions/s{seed}.tsv"
    threads: max(1, min(CFG.evaluation.workers or workflow.cores, workflow.cores))
    resources:
        mem_mb=2000,
        runtime=240,
    shell:
        "{PROMPTLAM} policy evaluate --method bc-actions --seed {wildcards.seed} --workers {threads}"
        " --out {output} --config-json {params.config:q} > {log} 2>&1"
