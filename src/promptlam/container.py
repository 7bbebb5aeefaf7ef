"""How a job finds promptlam: with the interpreter running Snakemake, or inside the container image.

Rules call the CLI as ``promptlam ...``, a shell function the Snakefile puts before every command
(`cli_shell_function`). On the host it runs the package with the interpreter running Snakemake,
whatever PATH says (a SLURM job's own Snakemake defines it again). Under ``--sdm apptainer`` every
rule runs in container/promptlam.def's image, whose environment names its interpreter in
``PROMPTLAM_PYTHON``: the function then runs the checkout's src/ with that interpreter. The image
holds the locked libraries and never a copy of the code (as the flake), so a code change needs no
new image and the rules never call a CLI older than themselves. Torch-free: the Snakefile calls it.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping

IMAGE_VARIABLE = "PROMPTLAM_IMAGE"
DEFAULT_IMAGE = os.path.join("container", "promptlam.sif")
BUILD_COMMAND = f"apptainer build {DEFAULT_IMAGE} container/promptlam.def"


def cli_shell_function(checkout: str, host_python: str) -> str:
    """The bash definition of ``promptlam`` for a workflow whose Snakefile lies in ``checkout``."""
    root = shlex.quote(checkout)
    # echo's text is single-quoted: the quotes around {root} end it and start it again
    not_visible = (
        f"promptlam: error: the checkout '{root}' is not visible inside the container: "
        f"run Snakemake from it, or add --apptainer-args \"--bind '{root}'\""
    )
    in_image = (
        f"if [ ! -d {root}/src ]; then echo '{not_visible}' >&2; return 2; fi; "
        f'PYTHONPATH={root}/src${{PYTHONPATH:+:$PYTHONPATH}} "$PROMPTLAM_PYTHON" -m promptlam "$@"'
    )
    on_host = f'{shlex.quote(host_python)} -m promptlam "$@"'
    return f'promptlam() {{ if [ -n "${{PROMPTLAM_PYTHON:-}}" ]; then {in_image}; else {on_host}; fi; }}; '


def image_path(checkout: str, environ: Mapping[str, str] = os.environ) -> str:
    """The image `container:` names: ``PROMPTLAM_IMAGE``, else container/promptlam.sif in the checkout."""
    return environ.get(IMAGE_VARIABLE) or os.path.join(checkout, DEFAULT_IMAGE)


def missing_image_error(path: str) -> str | None:
    """One line saying how to get the image when ``path`` is not a file, else None."""
    if os.path.isfile(path):
        return None
    return (f"{path}: no such container image: build it in the checkout with `{BUILD_COMMAND}`, "
            f"or set {IMAGE_VARIABLE} to where it is (docs/install.md, Containers)")
