# Figures and the tables behind them: one rule each, from the evaluation and metrics files.

import re

from promptlam.figures import comparison_inputs, fig1_inputs, sweep_inputs, transfer_inputs
from promptlam.runs import FIGURE_CSV, FIGURE_PDF, SUMMARY_CSV, SUMMARY_TXT, TABLE_TEX
from promptlam.summary import summary_inputs

SUMMARY = [SUMMARY_CSV, SUMMARY_TXT] if CFG.figures.summary is not None else []
TRANSFER = (
    [FIGURE_PDF.format(name="screening_transfer"), FIGURE_CSV.format(name="screening_transfer")]
    if CFG.figures.screening_transfer is not None
    else []
)

SWEEPS = list(CFG.figures.sweeps)
COMPARISONS = list(CFG.figures.comparisons)


def only(names):
    """A wildcard pattern matching exactly ``names`` (and nothing when there are none)."""
    return "|".join(map(re.escape, names)) or "(?!)"


rule fig1:
    input:
        fig1_inputs(CFG),
    output:
        pdf=FIGURE_PDF.format(name="fig1"),
        csv=FIGURE_CSV.format(name="fig1"),
    params:
        config=lambda wildcards: section_json(
            "seed", "tasks", "rollouts", "targets", "lam", "evaluation", "figures", "screening"
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
        config=lambda wildcards: section_json("seed", "tasks", "targets", "lam", "screening"),
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
        pdf=FIGURE_PDF,
        csv=FIGURE_CSV,
    wildcard_constraints:
        name=only(SWEEPS),
    params:
        config=lambda wildcards: section_json(
            "seed", "tasks", "rollouts", "targets", "lam", "evaluation", "figures", "screening"
        ),
    log:
        "logs/figures/{name}.log",
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "{PROMPTLAM} figures sweep {wildcards.name} --pdf {output.pdf} --csv {output.csv}"
        " --config-json {params.config:q} > {log} 2>&1"


rule comparison:
    input:
        lambda wildcards: comparison_inputs(CFG, wildcards.name),
    output:
        pdf=FIGURE_PDF,
        csv=FIGURE_CSV,
        tex=TABLE_TEX,
    wildcard_constraints:
        name=only(COMPARISONS),
    params:
        config=lambda wildcards: section_json(
            "seed", "tasks", "rollouts", "targets", "lam", "evaluation", "figures", "screening"
        ),
    log:
        "logs/figures/{name}.log",
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "{PROMPTLAM} figures comparison {wildcards.name} --pdf {output.pdf} --csv {output.csv}"
        " --tex {output.tex} --config-json {params.config:q} > {log} 2>&1"


rule summary:
    input:
        summary_inputs(CFG) if SUMMARY else [],
    output:
        csv=SUMMARY_CSV,
        txt=SUMMARY_TXT,
    params:
        config=lambda wildcards: section_json(
            "seed", "tasks", "rollouts", "targets", "lam", "evaluation", "figures", "screening"
        ),
    log:
        "logs/figures/summary.log",
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "{PROMPTLAM} figures summary --csv {output.csv} --txt {output.txt}"
        " --config-json {params.config:q} > {log} 2>&1"


rule screening_transfer:
    input:
        transfer_inputs(CFG) if TRANSFER else [],
    output:
        pdf=FIGURE_PDF.format(name="screening_transfer"),
        csv=FIGURE_CSV.format(name="screening_transfer"),
    params:
        config=lambda wildcards: section_json(
            "seed", "tasks", "rollouts", "targets", "lam", "evaluation", "figures", "screening"
        ),
    log:
        "logs/figures/screening_transfer.log",
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "{PROMPTLAM} figures screening-transfer --pdf {output.pdf} --csv {output.csv}"
        " --config-json {params.config:q} > {log} 2>&1"
