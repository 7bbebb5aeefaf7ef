# Stage 2: forward-model targets. A target is computed once per task and shared by every
# latent action model run that names it. Tiny random models (tests, smoke profile) are built
# by a rule too, so a smoke run needs nothing from the network.


wildcard_constraints:
    target=r"[A-Za-z0-9][A-Za-z0-9_.+-]*",  # `+`: a comparison's variant of a target
    family=r"[a-z0-9_]+",


rule tiny_model:
    output:
        directory(f"{TINY_MODELS}{{family}}"),
    log:
        "logs/tiny_models/{family}.log",
    shell:
        "promptlam targets tiny-model --family {wildcards.family} --out {output} > {log} 2>&1"


rule target:
    input:
        unpack(target_inputs),
    output:
        TARGET,
    log:
        "logs/targets/{target}/{task}.log",
    benchmark:
        "benchmarks/targets/{target}/{task}.tsv"
    threads: 2
    resources:
        gpu=needs_gpu,
        mem_mb=16000,
        runtime=720,
    params:
        config=lambda wildcards: target_section(wildcards.target),
    shell:
        "promptlam targets compute --target {wildcards.target} --task {wildcards.task}"
        " --rollouts {input.rollouts} --out {output} --config-json {params.config:q} > {log} 2>&1"


rule targets_all:
    input:
        expand(TARGET, target=list(CFG.targets), task=TASKS),
