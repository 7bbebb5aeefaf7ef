# Figures and the tables behind them: one rule each, from the evaluation and metrics files.

from promptlam.figures import (
    comparison_inputs,
    fig1_inputs,
    sweep_inputs,
    transfer_inputs,
)
from promptlam.runs import FIGURE_CSV, FIGURE_PDF, SUMMARY_CSV, SUMMARY_TXT, TABLE_TEX
from promptlam.summary import summary_inputs

SUMMARY = [SUMMARY_CSV, SUMMARY_TXT] if CFG.figures.summary is not None else []
TRANSFER = (
    [
        FIGURE_PDF.format(name="screening_transfer"),
        FIGURE_CSV.format(name="screening_transfer"),
    ]
    if CFG.figures.screening_transfer is not None
    else []
)

SWEEPS = list(CFG.figures.sweeps)
COMPARISONS = list(CFG.figures.comparisons)


rule fig1:
    input:
        fig1_inputs(CFG),
    output:
        pdf=in_report(FIGURE_PDF.format(name="fig1"), "fig1", "fig1", "figure (PDF)"),
        csv=in_report(FIGURE_CSV.format(name="fig1"), "fig1", "fig1", "numbers (CSV)"),
    log:
        "logs/figures/fig1.log",
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        config=lambda wildcards: section_json(
            "seed",
            "tasks",
            "rollouts",
            "targets",
            "lam",
            "evaluation",
            "figures",
            "screening",
        ),
    shell:
        "promptlam figures fig1 --pdf {output.pdf} --csv {output.csv}"
        " --config-json {params.config:q} > {log} 2>&1"


rule lam_probes:
    input:
        rules.lam_all.input,
    output:
        pdf=in_report(
            "figures/lam_probes.pdf", "lam_probes", "lam_probes", "figure (PDF)"
        ),
        csv=in_report(
            "tables/lam_probes.csv", "lam_probes", "lam_probes", "numbers (CSV)"
        ),
    log:
        "logs/figures/lam_probes.log",
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        config=lambda wildcards: section_json(
            "seed", "tasks", "targets", "lam", "screening"
        ),
    shell:
        "promptlam figures lam-probes --pdf {output.pdf} --csv {output.csv}"
        " --config-json {params.config:q} > {log} 2>&1"


rule sweep:
    input:
        lambda wildcards: sweep_inputs(CFG, wildcards.name),
    output:
        pdf=in_report(FIGURE_PDF, "sweep", "{name}", "figure (PDF)"),
        csv=in_report(FIGURE_CSV, "sweep", "{name}", "numbers (CSV)"),
    log:
        "logs/figures/{name}.log",
    wildcard_constraints:
        name=only(SWEEPS),
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        config=lambda wildcards: section_json(
            "seed",
            "tasks",
            "rollouts",
            "targets",
            "lam",
            "evaluation",
            "figures",
            "screening",
        ),
    shell:
        "promptlam figures sweep {wildcards.name} --pdf {output.pdf} --csv {output.csv}"
        " --config-json {params.config:q} > {log} 2>&1"


rule comparison:
    input:
        lambda wildcards: comparison_inputs(CFG, wildcards.name),
    output:
        pdf=in_report(FIGURE_PDF, "comparison", "{name}", "figure (PDF)"),
        csv=in_report(FIGURE_CSV, "comparison", "{name}", "numbers (CSV)"),
        tex=TABLE_TEX,
    log:
        "logs/figures/{name}.log",
    wildcard_constraints:
        name=only(COMPARISONS),
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        config=lambda wildcards: section_json(
            "seed",
            "tasks",
            "rollouts",
            "targets",
            "lam",
            "evaluation",
            "figures",
            "screening",
        ),
    shell:
        "promptlam figures comparison {wildcards.name} --pdf {output.pdf} --csv {output.csv}"
        " --tex {output.tex} --config-json {params.config:q} > {log} 2>&1"


rule summary:
    input:
        summary_inputs(CFG) if SUMMARY else [],
    output:
        csv=in_report(SUMMARY_CSV, "summary", "summary", "numbers (CSV)"),
        txt=in_report(SUMMARY_TXT, "summary", "summary", "text"),
    log:
        "logs/figures/summary.log",
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        config=lambda wildcards: section_json(
            "seed",
            "tasks",
            "rollouts",
            "targets",
            "lam",
            "evaluation",
            "figures",
            "screening",
        ),
    shell:
        "promptlam figures summary --csv {output.csv} --txt {output.txt}"
        " --config-json {params.config:q} > {log} 2>&1"


rule screening_transfer:
    input:
        transfer_inputs(CFG) if TRANSFER else [],
    output:
        pdf=in_report(
            FIGURE_PDF.format(name="screening_transfer"),
            "screening_transfer",
            "screening_transfer",
            "figure (PDF)",
        ),
        csv=in_report(
            FIGURE_CSV.format(name="screening_transfer"),
            "screening_transfer",
            "screening_transfer",
            "numbers (CSV)",
        ),
    log:
        "logs/figures/screening_transfer.log",
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        config=lambda wildcards: section_json(
            "seed",
            "tasks",
            "rollouts",
            "targets",
            "lam",
            "evaluation",
            "figures",
            "screening",
        ),
    shell:
        "promptlam figures screening-transfer --pdf {output.pdf} --csv {output.csv}"
        " --config-json {params.config:q} > {log} 2>&1"
