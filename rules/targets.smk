# Stage 2: forward-model targets. A target is computed once per task and shared by every
# latent action model run that names it. Tiny random models (tests, smoke profile) are built
# by a rule too, so a smoke run needs nothing from the network.

import functools

from promptlam.errors import UserError
from promptlam.methods import MODEL_TARGET_KINDS
from promptlam.vlm.cache import check_models_cached, hub_models

CONFIG_HINT = " ".join(f"--config {path}" for path in CONFIG_FILES)
TINY_MODELS = "models/tiny/"


wildcard_constraints:
    target=r"[A-Za-z0-9][A-Za-z0-9_.+-]*",  # `+`: a comparison's variant of a target
    family=r"[a-z0-9_]+",


def target_section(name):
    """JSON of what target `name` depends on: editing another target reruns nothing here."""
    return config_json(
        {"seed": CFG.seed, "targets": {name: CFG.targets[name].model_dump(mode="json")}}
    )


@functools.cache
def check_model_runnable(name):
    """Stop in one line, at planning (dry runs too) and before any job, when a target job the
    run needs has an unpinned hub model or one missing from the local cache (docs/targets.md).
    """
    try:
        check_models_cached(CFG, [name], config_hint=CONFIG_HINT)
    except UserError as error:
        stop(error)


def target_inputs(wildcards):
    # only targets still to compute need their model here (figures may be built elsewhere)
    if not os.path.exists(TARGET.format(target=wildcards.target, task=wildcards.task)):
        check_model_runnable(wildcards.target)
    inputs = {"rollouts": ROLLOUTS.format(split="train", task=wildcards.task)}
    target = CFG.targets[wildcards.target]
    if target.kind in MODEL_TARGET_KINDS and target.model.startswith(TINY_MODELS):
        inputs["model"] = target.model
    return inputs


def needs_gpu(wildcards):
    """Hub models ask for a GPU (when the config uses GPUs); tiny local models never do."""
    return GPU if hub_models(CFG, [wildcards.target]) else 0


rule tiny_model:
    output:
        directory(f"{TINY_MODELS}{{family}}"),
    log:
        "logs/tiny_models/{family}.log",
    shell:
        "{PROMPTLAM} targets tiny-model --family {wildcards.family} --out {output} > {log} 2>&1"


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
        "{PROMPTLAM} targets compute --target {wildcards.target} --task {wildcards.task}"
        " --rollouts {input.rollouts} --out {output} --config-json {params.config:q} > {log} 2>&1"


rule targets_all:
    input:
        expand(TARGET, target=list(CFG.targets), task=TASKS),
