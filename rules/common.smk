# Helpers shared by the rule files.
import json
import shlex
import sys

from promptlam.runs import EVAL_FILE, LABELLED, ROLLOUTS, TARGET

PROMPTLAM = f"{shlex.quote(sys.executable)} -m promptlam"
"""How rules call the CLI: with the interpreter running Snakemake, whatever PATH says."""


def config_json(sections):
    """Config sections as a canonical JSON string: what a rule hands its CLI via --config-json.

    Passing only what a stage reads keeps Snakemake from rerunning it when an unrelated key
    changes (params are part of a job's rerun triggers).
    """
    return json.dumps(sections, sort_keys=True, separators=(",", ":"))


def section_json(*names):
    """The named top-level config sections, as `config_json`."""
    return config_json(CFG.section(*names))


GPU = 1 if CFG.use_gpus else 0
"""GPUs a training job asks for (resource `gpu`): none when the config says `use_gpus: false`."""

TASKS = list(CFG.tasks)
TRAIN_ROLLOUTS = expand(ROLLOUTS, split="train", task=TASKS)
BACKGROUNDS = list(CFG.evaluation.backgrounds)


def evaluations(folder):
    """The evaluation files of a policy folder (a path with wildcards), one per background split."""
    return [
        f"{folder}/{EVAL_FILE.format(background=background)}"
        for background in BACKGROUNDS
    ]
