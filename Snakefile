# promptlam: every figure and table of the paper is a target of this workflow.
#   snakemake figures/fig1.pdf --cores all                 (paper scale, local)
#   snakemake --profile profiles/smoke                     (CPU quick reproduction)
#   snakemake --profile profiles/slurm <target>            (cluster)
# Rules are thin shell calls of the CLI, `promptlam ...` (rules/common.smk); the logic lives in
# src/promptlam.

import time

from snakemake.utils import min_version

min_version("9.0")

RUN_STARTED = time.time()


configfile: os.path.join(workflow.basedir, "config.yaml")


# The checked config (CFG), how rules call the CLI and the functions rules use; a config error,
# a dropped profile config file or an unset SLURM account stops here in one line, before any job.
include: "rules/common.smk"


# Used only with `--sdm apptainer` (docs/install.md, Containers): every job in an image of the lock,
# for nodes whose system libraries differ from those of the machine that installed .venv or Nix.
container: IMAGE


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


# Under profiles/slurm, every submitted job is capped at its partition's limits (promptlam.slurm).
fit_jobs_to_partitions()


onstart:
    # under profiles/slurm: jobs that fit no partition, jobs a killed run left, SIGTERM
    slurm_onstart()


onsuccess:
    # the paper's claims beside this run, when this run built them (an older summary may
    # describe another config)
    if os.path.exists(SUMMARY_TXT) and os.path.getmtime(SUMMARY_TXT) >= RUN_STARTED:
        print(open(SUMMARY_TXT).read())
