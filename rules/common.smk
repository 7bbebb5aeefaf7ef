# Shared by the stage files (rules/*.smk): the checked config, how rules call the CLI, and the
# functions the rules use (here, away from the rules, as `snakemake --lint` asks), by stage.

import functools
import json
import re
import sys

from snakemake.utils import validate
from snakemake_interface_executor_plugins.settings import DeploymentMethod

from promptlam.cluster import (
    ACCOUNT_VARIABLE,
    PARTITIONS_VARIABLE,
    accounting_enabled,
    cluster_error,
    is_slurm_run,
    read_partitions,
    slurm_setup_error,
)
from promptlam.config import ConfigError, validate_config
from promptlam.container import cli_shell_function, image_path, missing_image_error
from promptlam.errors import UserError
from promptlam.methods import MODEL_TARGET_KINDS
from promptlam.runs import (
    EVAL_FILE,
    LABELLED,
    ROLLOUTS,
    TARGET,
    RunKey,
    lam_section,
    screen_trajectories,
)
from promptlam.vlm.cache import check_models_cached, hub_models

# ---- Stopping before any job -------------------------------------------------------------------


def stop(message):
    """End the run before any job with one line (a traceback would bury it)."""
    print(f"promptlam: error: {message}", file=sys.stderr)
    raise SystemExit(2)


# The profile's own config file is replaced, not extended, by a --configfile on the command line:
# the profiles name theirs in a `promptlam_configfile` resource so that dropping it is caught.
RAW_RESOURCES = {
    name: str(resource.raw)
    for name, resource in (workflow.resource_settings.default_resources or {}).items()
}
if workflow.is_main_process:
    profile_configfile = RAW_RESOURCES.get("promptlam_configfile", "").strip("'\"")
    loaded = {os.path.realpath(path) for path in workflow.overwrite_configfiles}
    if (
        profile_configfile
        and os.path.realpath(os.path.join(workflow.basedir, profile_configfile))
        not in loaded
    ):
        stop(
            f"--configfile replaced the profile's own config file {profile_configfile}: "
            f"name it first, --configfile {profile_configfile} <yours>"
        )
    if message := slurm_setup_error(RAW_RESOURCES):
        stop(message)

# profiles/slurm (promptlam.slurm): jobs sized to their partitions, in the main Snakemake and in
# each job's own (which finds the file in the environment sbatch passes on); in the main one, the
# partitions file against the cluster (sinfo) and the account (sacctmgr), the executor's
# work-arounds and, at start, the checks and the stop handler (slurm_onstart, the Snakefile's onstart).
PARTITIONS_FILE = os.environ.get(PARTITIONS_VARIABLE, "")
SLURM = is_slurm_run(RAW_RESOURCES) and os.path.isfile(PARTITIONS_FILE)
if SLURM:
    from promptlam import slurm

    try:
        PARTITIONS = read_partitions(PARTITIONS_FILE)
        if workflow.is_main_process:
            ACCOUNTING = accounting_enabled()
            account = os.environ.get(ACCOUNT_VARIABLE, "")
            if message := cluster_error(
                PARTITIONS, PARTITIONS_FILE, account, ACCOUNTING
            ):
                stop(message)
            slurm.patch_executor(accounting=ACCOUNTING)
    except UserError as error:
        stop(error)


def fit_jobs_to_partitions():
    """Called after all the rules exist, to cap each submitted job at its partition's limits."""
    if SLURM:
        slurm.fit_rules_to_partitions(workflow, PARTITIONS, PARTITIONS_FILE)


def slurm_onstart():
    """Before the first submission: stop in one line when a job fits no partition, cancel jobs a
    killed earlier run left, and make SIGTERM cancel this run's jobs as Ctrl-C does."""
    if not (SLURM and workflow.is_main_process):
        return
    jobs = list(workflow.dag.needrun_jobs())
    if message := slurm.jobs_that_fit_nowhere(jobs, PARTITIONS, PARTITIONS_FILE):
        stop(message)
    slurm.cancel_orphans(workflow.workdir_init)
    slurm.stop_on_signal()


# The container every rule runs in under `--sdm apptainer` (container/promptlam.def); without that
# option the directive is unused and jobs run in the environment running Snakemake.
IMAGE = image_path(workflow.basedir)
if (
    workflow.is_main_process
    and DeploymentMethod.APPTAINER in workflow.deployment_settings.deployment_method
):
    if message := missing_image_error(IMAGE):
        stop(message)

# Fails before any job starts, naming the key in one line: first the typed config (it fills in
# defaults and checks cross-key constraints), then the JSON schema, as Snakemake validates.
# (Snakemake's own default filling would merge the defaults of every target kind into each target.)
CONFIG_FILES = ["config.yaml", *map(str, workflow.overwrite_configfiles)]
CONFIG_SOURCE = " + ".join(
    CONFIG_FILES + (["--config"] if workflow.config_settings.config else [])
)
try:
    CFG = validate_config(config, CONFIG_SOURCE)
    CFG.check_figures(CONFIG_SOURCE)
except ConfigError as error:
    stop(error)
validate(config, "../schemas/config.schema.json", set_default=False)

if CFG.distractors.enabled and CFG.distractors.source == "folder":
    # a missing, empty or one-video folder would otherwise stop the first rollout job
    from promptlam.envs.distractors import discover_folder_videos

    try:
        discover_folder_videos(CFG.distractors.folder, CFG.distractors.eval_fraction)
    except UserError as error:
        stop(error)

# ---- Calling the CLI ---------------------------------------------------------------------------

# Rules call the CLI as `promptlam ...`: a shell function that runs the package with the
# interpreter running Snakemake, or inside the container image with the image's interpreter
# (promptlam.container). Bash jobs keep Snakemake's strict mode.
STRICT_MODE = (
    "set -euo pipefail; "
    if os.path.basename(shell.get_executable() or "") == "bash"
    else ""
)
# (shell.prefix formats its argument as a rule's command is: braces are doubled to stay braces)
shell.prefix(
    STRICT_MODE
    + cli_shell_function(workflow.basedir, sys.executable)
    .replace("{", "{{")
    .replace("}", "}}")
)


def config_json(sections):
    """Config sections as a canonical JSON string: what a rule hands its CLI via --config-json.

    Passing only what a stage reads keeps Snakemake from rerunning it when an unrelated key
    changes (params are part of a job's rerun triggers).
    """
    if (
        CFG.torch_threads is not None
    ):  # (absent when unset: existing results keep their params)
        sections = {**sections, "torch_threads": CFG.torch_threads}
    return json.dumps(sections, sort_keys=True, separators=(",", ":"))


def section_json(*names):
    """The named top-level config sections, as `config_json`."""
    return config_json(CFG.section(*names))


GPU = 1 if CFG.use_gpus else 0
"""GPUs a training job asks for (resource `gpu`): none when the config says `use_gpus: false`."""

TASKS = list(CFG.tasks)
TRAIN_ROLLOUTS = expand(ROLLOUTS, split="train", task=TASKS)
BACKGROUNDS = list(CFG.evaluation.backgrounds)

# ---- Targets (rules/targets.smk) ---------------------------------------------------------------

CONFIG_HINT = " ".join(f"--config {path}" for path in CONFIG_FILES)
TINY_MODELS = "models/tiny/"


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


# ---- Latent action model runs (rules/lam.smk) and their policies (rules/policy.smk) ------------


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
    section["lam"] = lam_section(section["lam"])  # without what changes no single run
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


def targets_arg(wildcards, input):
    """`--targets FILE...` for runs that read target files, nothing for the others."""
    return f"--targets {' '.join(input.targets)}" if "targets" in input.keys() else ""


def evaluations(folder):
    """The evaluation files of a policy folder (a path with wildcards), one per background split."""
    return [
        f"{folder}/{EVAL_FILE.format(background=background)}"
        for background in BACKGROUNDS
    ]


# ---- Figures (rules/figures.smk) ---------------------------------------------------------------


def in_report(path, caption, subcategory, kind):
    """An output the HTML report shows (`snakemake --report`), captioned by report/{caption}.rst."""
    return report(
        path,
        caption=f"../report/{caption}.rst",
        category="Figures",
        subcategory=subcategory,
        labels={"file": kind},
    )


def only(names):
    """A wildcard pattern matching exactly ``names`` (and nothing when there are none)."""
    return "|".join(map(re.escape, names)) or "(?!)"
