# promptlam: every figure and table of the paper is a target of this workflow.
#   snakemake figures/fig1.pdf --cores all                 (paper scale, local)
#   snakemake --profile profiles/smoke                     (CPU quick reproduction)
#   snakemake --profile profiles/slurm <target>            (cluster)
# Rules are thin shell calls of `python -m promptlam ...`; the logic lives in src/promptlam.

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: os.path.join(workflow.basedir, "config.yaml")


# Fails before any job starts, naming the key: first the JSON schema (as Snakemake validates),
# then the typed config that fills in defaults and checks cross-key constraints. (Snakemake's
# own default filling would merge the defaults of every target kind into each target.)
validate(config, "schemas/config.schema.json", set_default=False)

from promptlam.config import validate_config

CFG = validate_config(config, "config")
CFG.check_figures("config")


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
    # the paper's claims beside this run, when the run built (or had) them
    if os.path.exists(SUMMARY_TXT):
        print(open(SUMMARY_TXT).read())
