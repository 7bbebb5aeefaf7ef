# Figures and the tables behind them: one rule each, from the evaluation and metrics files.

import re

from promptlam.figures import fig1_inputs, sweep_inputs

SWEEPS = list(CFG.figures.sweeps)


rule fig1:
    input:
        fig1_inputs(CFG),
    output:
        pdf="figures/fig1.pdf",
        csv="figures/fig1.csv",
    params:
        config=lambda wildcards: section_json(
            "seed", "tasks", "rollouts", "targets", "lam", "evaluation", "figures"
        ),
    log:
        "logs/figures/fig1.log",
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "{PROMPTLAM} figures fig1 --pdf {output.pdf} --csv {output.csv}"
        " --config-json {params.config:q} > {log} 2>&1"


rule lam_probes:
    input:
        rules.lam_all.input,
    output:
        pdf="figures/lam_probes.pdf",
        csv="tables/lam_probes.csv",
    params:
        config=lambda wildcards: section_json("seed", "tasks", "targets", "lam"),
    log:
        "logs/figures/lam_probes.log",
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "{PROMPTLAM} figures lam-probes --pdf {output.pdf} --csv {output.csv}"
        " --config-json {params.config:q} > {log} 2>&1"


rule sweep:
    input:
        lambda wildcards: sweep_inputs(CFG, wildcards.name),
    output:
        pdf="figures/{name}.pdf",
        csv="figures/{name}.csv",
    wildcard_constraints:
        # only the configured sweeps (a pattern that matches nothing when there are none)
        name="|".join(map(re.escape, SWEEPS)) or "(?!)",
    params:
        config=lambda wildcards: section_json(
            "seed", "tasks", "rollouts", "targets", "lam", "evaluation", "figures"
        ),
    log:
        "logs/figures/{name}.log",
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "{PROMPTLAM} figures sweep {wildcards.name} --pdf {output.pdf} --csv {output.csv}"
        " --config-json {params.config:q} > {log} 2>&1"
