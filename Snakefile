# promptlam: every figure and table of the paper is a target of this workflow.
#   snakemake figures/fig1.pdf --cores all                 (paper scale, local)
#   snakemake --profile profiles/smoke                     (CPU quick reproduction)
#   snakemake --profile profiles/slurm <target>            (cluster)
# Rules are thin shell calls of `python -m promptlam ...`; the logic lives in src/promptlam.

import sys
import time

from snakemake.utils import min_version, validate

min_version("9.0")

RUN_STARTED = time.time()


configfile: os.path.join(workflow.basedir, "config.yaml")


def stop(message):
    """End the run before any job with one line (a traceback would bury it)."""
    print(f"promptlam: error: {message}", file=sys.stderr)
    raise SystemExit(2)


from promptlam.cluster import slurm_setup_error
from promptlam.config import ConfigError, validate_config

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
validate(config, "schemas/config.schema.json", set_default=False)

if CFG.distractors.enabled and CFG.distractors.source == "folder":
    # a missing, empty or one-video folder would otherwise stop the first rollout job
    from promptlam.envs.distractors import discover_folder_videos
    from promptlam.errors import UserError

    try:
        discover_folder_videos(CFG.distractors.folder, CFG.distractors.eval_fraction)
    except UserError as error:
        stop(error)


# Jobs of seconds: on a cluster they run on the submit host instead of waiting in the queue.
localrules:
    all,
    tiny_model,
    labelled_subset,
    rollout_preview,
    rollouts_all,
    targets_all,
    lam_all,
    lam_probes,
    fig1,
    sweep,
    comparison,
    summary,
    screening_transfer,


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/rollouts.smk"
include: "rules/targets.smk"
include: "rules/lam.smk"
include: "rules/policy.smk"
include: "rules/figures.smk"


rule all:
    default_target: True
    input:
        rules.rollouts_all.input,
        rules.targets_all.input,
        rules.lam_all.input,
        rules.lam_probes.output,
        rules.fig1.output,
        expand(rules.sweep.output, name=SWEEPS),
        expand(rules.comparison.output, name=COMPARISONS),
        SUMMARY,
        TRANSFER,


onsuccess:
    # the paper's claims beside this run, when this run built them (an older summary may
    # describe another config)
    if os.path.exists(SUMMARY_TXT) and os.path.getmtime(SUMMARY_TXT) >= RUN_STARTED:
        print(open(SUMMARY_TXT).read())
