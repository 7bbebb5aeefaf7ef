# Helpers shared by the rule files.
import json
import shlex
import sys

PROMPTLAM = f"{shlex.quote(sys.executable)} -m promptlam"
"""How rules call the CLI: with the interpreter running Snakemake, whatever PATH says."""


def section_json(*names):
    """The named config sections as a JSON string: what a rule hands its CLI via --config-json.

    Passing only the sections a stage reads keeps Snakemake from rerunning it when an unrelated
    key changes (params are part of a job's rerun triggers).
    """
    return json.dumps(CFG.section(*names), sort_keys=True, separators=(",", ":"))


TASKS = list(CFG.tasks)
