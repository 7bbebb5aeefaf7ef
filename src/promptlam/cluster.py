"""What a SLURM run needs from the user's environment, checked before the workflow plans a job.

profiles/slurm takes everything site-specific from the environment, so that nobody edits a
tracked file: the account (``PROMPTLAM_SLURM_ACCOUNT``, through the `slurm_account` default
resource) and the partitions file (``SNAKEMAKE_SLURM_PARTITIONS``, read by the executor plugin).
Snakemake would otherwise submit with the literal text ``$PROMPTLAM_SLURM_ACCOUNT`` and stop at the
plugin's account check after planning, or silently send GPU jobs to the default partition.
Torch-free: the Snakefile calls it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

PARTITIONS_VARIABLE = "SNAKEMAKE_SLURM_PARTITIONS"
_VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")


def unset_variables(raw_values: Mapping[str, str], environ: Mapping[str, str] = os.environ) -> list[str]:
    """Environment variables named in ``raw_values`` (resource expressions as the profile wrote
    them) that are not set, in order of first mention."""
    missing: list[str] = []
    for raw in raw_values.values():
        for name in _VARIABLE.findall(str(raw)):
            if name not in environ and name not in missing:
                missing.append(name)
    return missing


def slurm_setup_error(raw_resources: Mapping[str, str], environ: Mapping[str, str] = os.environ) -> str | None:
    """One line saying what to set before a SLURM run, or None when nothing is missing (or the
    run does not go through SLURM, recognised by its `slurm_account` resource)."""
    if "slurm_account" not in raw_resources:
        return None
    missing = unset_variables(raw_resources, environ)
    if missing:
        return (f"profiles/slurm: environment variable {', '.join(missing)} is not set "
                f"(export PROMPTLAM_SLURM_ACCOUNT=<account>, or empty for your default account; docs/slurm.md)")
    partitions = environ.get(PARTITIONS_VARIABLE, "")
    if not partitions:
        return (f"profiles/slurm: {PARTITIONS_VARIABLE} is not set: copy profiles/slurm/partitions.example.yaml to "
                f"profiles/slurm/partitions.yaml, name your partitions in it and export {PARTITIONS_VARIABLE}=<its path>")
    if not os.path.isfile(partitions):
        return f"{PARTITIONS_VARIABLE}={partitions}: no such file (the partitions file of profiles/slurm, docs/slurm.md)"
    return None
