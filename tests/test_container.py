"""Rules under `--sdm apptainer`: the `promptlam` shell function inside and outside the image, and
the workflow through Snakemake's apptainer integration against a stand-in for apptainer
(tests/apptainer/: runs each command on this machine with the image's environment, records the
call). Real apptainer and the image built from container/promptlam.def are not run here
(docs/install.md, Containers)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from promptlam.container import cli_shell_function, image_path, missing_image_error

from conftest import REPO
from test_slurm import cluster_env, submissions
from test_slurm import snakemake as slurm_snakemake

STANDIN = REPO / "tests/apptainer"
TARGET = "data/targets/tiny-clip/reach-v3.h5"


def call(function, environ, *args):
    """Defines the function in bash as a rule's prefix does, then calls `promptlam ARGS`."""
    script = f"set -euo pipefail; {function} promptlam {' '.join(args)}"
    return subprocess.run(["bash", "-c", script], env=environ, capture_output=True, text=True, timeout=60)


def recorder(tmp_path, name):
    """An executable that appends its arguments to NAME.log, then runs them with this interpreter."""
    log, path = tmp_path / f"{name}.log", tmp_path / name
    path.write_text(f'#!/usr/bin/env bash\necho "$@" >> {log}\nexec {sys.executable} "$@"\n')
    path.chmod(0o755)
    return path, log


def test_on_the_host_the_function_runs_the_interpreter_running_snakemake(tmp_path):
    host, log = recorder(tmp_path, "host-python")
    run = call(cli_shell_function(str(REPO), str(host)), {"PATH": os.environ["PATH"]}, "--help")
    assert run.returncode == 0, run.stderr
    assert "usage: promptlam" in run.stdout and log.read_text().split() == ["-m", "promptlam", "--help"]


def test_in_the_image_the_function_runs_the_checkouts_code_with_the_images_interpreter(tmp_path):
    host, host_log = recorder(tmp_path, "host-python")
    image, image_log = recorder(tmp_path, "image-python")
    package = tmp_path / "check out/src/promptlam"  # a path that needs quoting
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text("import sys; print(__file__, *sys.argv[1:])\n")
    environ = {"PATH": os.environ["PATH"], "PROMPTLAM_PYTHON": str(image)}
    run = call(cli_shell_function(str(package.parents[1]), str(host)), environ, "lam", "'a b'")
    assert run.returncode == 0, run.stderr
    # the checkout's code, not the installed promptlam, with the arguments as given
    assert run.stdout == f"{package / '__main__.py'} lam a b\n"
    assert image_log.read_text().split() == ["-m", "promptlam", "lam", "a", "b"] and not host_log.exists()


def test_in_the_image_a_checkout_it_cannot_see_stops_the_job_in_one_line(tmp_path):
    image, _ = recorder(tmp_path, "image-python")
    hidden = tmp_path / "not bound"
    run = call(cli_shell_function(str(hidden), sys.executable), {"PATH": os.environ["PATH"], "PROMPTLAM_PYTHON": str(image)})
    assert run.returncode == 2
    assert run.stderr == (f"promptlam: error: the checkout {hidden} is not visible inside the container: "
                          f"run Snakemake from it, or add --apptainer-args \"--bind {hidden}\"\n")


def test_the_image_is_the_checkouts_unless_the_environment_names_another(tmp_path):
    assert image_path("/repo", {}) == "/repo/container/promptlam.sif"
    assert image_path("/repo", {"PROMPTLAM_IMAGE": "/scratch/p.sif"}) == "/scratch/p.sif"
    image = tmp_path / "p.sif"
    assert "apptainer build container/promptlam.sif container/promptlam.def" in missing_image_error(str(image))
    image.write_text("")
    assert missing_image_error(str(image)) is None


def snakemake(workdir, environ, *args):
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
               "--profile", str(REPO / "profiles/smoke"), "--directory", str(workdir),
               "--software-deployment-method", "apptainer", *args]
    return subprocess.run(command, env=environ, capture_output=True, text=True, timeout=1800)  # runaway limit


def standin_image(tmp_path):
    """A stand-in image whose %environment names a recording interpreter; (image, its log)."""
    python, log = recorder(tmp_path, "image-python")
    image = tmp_path / "promptlam.sif"
    image.write_text(f"PROMPTLAM_PYTHON={python}\n")
    return image, log


def apptainer_env(tmp_path, image):
    return {**os.environ, "PATH": f"{STANDIN}:{os.environ['PATH']}", "FAKE_APPTAINER": str(tmp_path / "apptainer"),
            "PROMPTLAM_IMAGE": str(image)}


def test_an_apptainer_run_without_the_image_stops_before_any_job_in_one_line(tmp_path):
    image = tmp_path / "missing.sif"
    run = snakemake(tmp_path, apptainer_env(tmp_path, image), "--dry-run", TARGET)
    assert run.returncode != 0
    assert run.stderr.strip().splitlines()[-1] == f"promptlam: error: {missing_image_error(str(image))}"


@pytest.mark.workflow
def test_every_job_runs_in_the_image_with_the_images_interpreter(tmp_path):
    image, log = standin_image(tmp_path)
    environ = apptainer_env(tmp_path, image)
    run = snakemake(tmp_path, environ, "--apptainer-args=--nv", TARGET)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert (tmp_path / TARGET).exists()
    calls = [path.read_bytes().decode().split("\0")[:-1] for path in Path(environ["FAKE_APPTAINER"], "calls").glob("*.args")]
    for args in calls:
        assert args[args.index("exec") + 1:args.index("exec") + 3] == ["--home", str(tmp_path)]
        assert "--nv" in args and args[-4:-1] == [str(image), "bash", "-c"]
    # one call per job, the tiny model (a local rule) included, each run by the image's interpreter
    jobs = sorted(" ".join(line.split()[:4]) for line in log.read_text().splitlines())
    assert len(calls) == 3 and jobs == ["-m promptlam rollouts collect", "-m promptlam targets compute",
                                        "-m promptlam targets tiny-model"]


@pytest.mark.workflow
def test_under_slurm_each_jobs_own_snakemake_runs_it_in_the_image(tmp_path, slurm_cluster):
    """On the real one-node SLURM (tests/slurm/cluster.sh), apptainer still a stand-in."""
    image, log = standin_image(tmp_path)
    environ = cluster_env(tmp_path, FAKE_APPTAINER=str(tmp_path / "apptainer"), PROMPTLAM_IMAGE=str(image))
    environ["PATH"] = f"{STANDIN}:{environ['PATH']}"
    rollouts = "data/rollouts/train/reach-v3.h5"
    run = slurm_snakemake(tmp_path, environ, "--software-deployment-method", "apptainer",
                          "--apptainer-args=--nv --bind /data", rollouts)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert (tmp_path / rollouts).exists() and submissions(tmp_path) == ["rollouts"]
    [args] = [path.read_bytes().decode().split("\0")[:-1] for path in Path(environ["FAKE_APPTAINER"], "calls").glob("*.args")]
    assert args[:6] == ["exec", "--home", str(tmp_path), "--nv", "--bind", "/data"] and args[-4] == str(image)
    assert log.read_text().startswith("-m promptlam rollouts collect --task reach-v3 --split train")


def test_the_recipe_copies_every_file_make_setup_reads():
    """%post runs `make setup` in /opt/promptlam: each prerequisite of its stamp must be copied in."""
    recipe = (REPO / "container/promptlam.def").read_text()
    copied = [line.split()[0] for line in recipe.split("%files")[1].split("\n%")[0].splitlines() if line.strip()]
    makefile = (REPO / "Makefile").read_text()
    prerequisites = re.search(r"^\$\(VENV\)/\.installed-\$\(VARIANT\): (.+)$", makefile, re.MULTILINE).group(1).split()
    locks = re.findall(r"lock/pylock[-a-z]*\.toml", makefile)  # what $(LOCK) may be
    needed = [path for name in prerequisites for path in (locks if name == "$(LOCK)" else [name])]
    assert len(needed) >= 5 and "Makefile" in copied
    assert [path for path in needed if not any(path == c or path.startswith(c + "/") for c in copied)] == []
    assert "make setup VENV=/opt/venv VARIANT={{ VARIANT }} INSTALL_PROJECT=no" in recipe
