#!/usr/bin/env python3
"""The Python locks of promptlam (PEP 751), made by pip and read by pip and Nix.

Standard library only (Python 3.11+), so it runs before any environment exists.

    python3 lock/pylock.py generate            # re-resolve the pins of pyproject.toml (`make lock`)
    python3 lock/pylock.py check               # the lock still matches pyproject.toml, every entry hashed
    python3 lock/pylock.py requirements --only torch   # hashed pip requirements (`make setup` uses these)
    python3 lock/pylock.py requirements --exclude torch
    python3 lock/pylock.py check --variant cuda        # any command, for the GPU lock

Two variants, each for CPython 3.11 on x86_64 Linux, each with the build backend of
pyproject.toml (setuptools) and pip itself, one file per package with its URL and sha256:
- ``cpu`` (lock/pylock.toml): `.[test,efficientnet]` with the CPU build of torch; `make setup`
  and the Nix flake install it;
- ``cuda`` (lock/pylock-cuda.toml): `.[test,efficientnet,molmo]` with PyPI's build of torch (CUDA
  13) and its NVIDIA libraries, torchvision, einops and tensorflow-cpu for Molmo v1's hub code;
  `make setup VARIANT=cuda` installs it on GPU machines (the two builds of torch cannot share an
  environment, so the variants are two locks).
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "lock" / "pylock.toml"
PYPROJECT = ROOT / "pyproject.toml"
CONSTRAINTS = ROOT / "constraints-cpu.txt"

TOOLS = ("pip==26.3",)             # the installer itself, so `make setup` installs nothing unhashed
PYTHON = "3.11"                    # the interpreter the wheels are for (cp311); Nix pins python311
REQUIRES_PYTHON = ">=3.11,<3.12"
ENVIRONMENT = "sys_platform == 'linux' and platform_machine == 'x86_64' and implementation_name == 'cpython'"
PIP_FOR_LOCKING = "pip==26.3"      # `pip lock` (PEP 751 output) appeared in pip 25.1
INDEX = "https://pypi.org/simple"
TORCH_INDEX = "https://download.pytorch.org/whl/cpu"  # where the CPU build of torch is published


@dataclass(frozen=True)
class Variant:
    """One lock: which extras it holds and where torch comes from."""

    name: str
    lock: Path
    extras: tuple[str, ...]
    constraints: Path | None  # constraint lines resolved with (and recorded in the inputs)
    pypi_torch: bool          # torch from PyPI (its CUDA build), never a local copy of the CPU build

    @property
    def make_lock(self) -> str:
        """The command that regenerates this lock."""
        return "make lock" if self.name == "cpu" else f"make lock VARIANT={self.name}"


VARIANTS = {
    "cpu": Variant("cpu", LOCK, ("test", "efficientnet"), CONSTRAINTS, pypi_torch=False),
    # PyPI's torch is the CUDA build, with which torchvision (the `molmo` extra) installs.
    "cuda": Variant("cuda", ROOT / "lock" / "pylock-cuda.toml", ("test", "efficientnet", "molmo"), None,
                    pypi_torch=True),
}
CPU = VARIANTS["cpu"]

_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*==\s*([^\s;,]+)\s*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class LockError(Exception):
    """A one-line reason the lock is unusable or stale."""


def normalize(name: str) -> str:
    """PEP 503 name normalization."""
    return re.sub(r"[-_.]+", "-", name).lower()


# ------------------------------------------------------------------------------------ lock inputs
def lock_inputs(variant: Variant = CPU, pyproject: Path = PYPROJECT) -> dict[str, list[str]]:
    """What the lock is made from: the exact pins (project, locked extras, tools), the build
    backend's requirements (ranges) and the constraint lines."""
    data = tomllib.loads(pyproject.read_text())
    project = data["project"]
    extras = project.get("optional-dependencies", {})
    missing = [e for e in variant.extras if e not in extras]
    if missing:
        raise LockError(f"{pyproject.name}: extra(s) {', '.join(missing)} missing from [project.optional-dependencies]")
    requirements = list(project.get("dependencies", []))
    for extra in variant.extras:
        requirements += extras[extra]
    requirements += list(TOOLS)
    build = list(data.get("build-system", {}).get("requires", []))
    constraints = variant.constraints.read_text().splitlines() if variant.constraints else []
    constraint_lines = [line.split("#", 1)[0].strip() for line in constraints]
    return {"requirements": requirements, "build": build, "constraints": [c for c in constraint_lines if c]}


def fingerprint(inputs: dict[str, list[str]]) -> str:
    """sha256 of the normalized inputs: any change to them (a pin, an added or removed package)
    makes the lock stale."""
    canon = {key: sorted(" ".join(line.split()) for line in lines) for key, lines in inputs.items()}
    return hashlib.sha256(json.dumps(canon, sort_keys=True).encode()).hexdigest()


def exact_pins(inputs: dict[str, list[str]]) -> dict[str, str]:
    """``name -> version`` for every ``name==version`` requirement (project pins and tools)."""
    pins = {}
    for line in inputs["requirements"]:
        match = _PIN.match(line)
        if match:
            pins[normalize(match.group(1))] = match.group(3)
    return pins


# ------------------------------------------------------------------------------------ lock reading
def read_lock(path: Path = LOCK, make_lock: str = "make lock") -> dict:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise LockError(f"{path}: no lock file; run `{make_lock}`") from None
    except tomllib.TOMLDecodeError as exc:
        raise LockError(f"{path}: not valid TOML ({exc})") from None


def archives(package: dict) -> list[dict]:
    """The files a lock entry names (its wheels and its sdist)."""
    files = list(package.get("wheels", []))
    if "sdist" in package:
        files.append(package["sdist"])
    return files


def version_matches(pinned: str, locked: str) -> bool:
    """``==pinned`` admits ``locked``: equal, or equal but for a local label (2.13.0 admits 2.13.0+cpu)."""
    return locked == pinned or (locked.split("+", 1)[0] == pinned and "+" not in pinned)


def check(lock: dict, inputs: dict[str, list[str]]) -> list[str]:
    """Every way ``lock`` fails to be a complete, hashed lock of ``inputs``; empty if none."""
    problems = []
    packages = lock.get("packages", [])
    if not packages:
        return ["the lock has no packages"]
    locked: dict[str, str] = {}
    for package in packages:
        name = normalize(package.get("name", "?"))
        if name in locked:
            problems.append(f"{name} is locked twice")
        locked[name] = str(package.get("version", ""))
        if not locked[name]:
            problems.append(f"{name} has no version")
        files = archives(package)
        if not files:
            problems.append(f"{name} {locked[name]} names no file (a directory or VCS entry is not a lock)")
        for file in files:
            sha = file.get("hashes", {}).get("sha256", "")
            if not _SHA256.match(sha):
                problems.append(f"{name} {locked[name]}: {file.get('name', '?')} has no sha256")
            if not str(file.get("url", "")).startswith("https://"):
                problems.append(f"{name} {locked[name]}: {file.get('name', '?')} has no https URL")
    for line in inputs["requirements"]:
        match = _PIN.match(line)
        if not match:
            problems.append(f"pyproject.toml: {line!r} is not an exact pin (name==version)")
    for line in inputs["build"]:
        name = normalize(re.split(r"[\s\[<>=!~;]", line.strip(), maxsplit=1)[0])
        if name not in locked:
            problems.append(f"build-system requirement {name} is not in the lock")
    for name, version in exact_pins(inputs).items():
        if name not in locked:
            problems.append(f"{name}=={version} is pinned but not in the lock")
        elif not version_matches(version, locked[name]):
            problems.append(f"{name} is pinned at {version} but locked at {locked[name]}")
    for line in inputs["constraints"]:
        match = _PIN.match(line)
        if match and normalize(match.group(1)) in locked and not version_matches(match.group(3), locked[normalize(match.group(1))]):
            problems.append(f"constraints-cpu.txt: {line} but the lock has {locked[normalize(match.group(1))]}")
    made_from = lock.get("tool", {}).get("promptlam", {}).get("inputs-sha256")
    if made_from != fingerprint(inputs):
        problems.append("the lock was made from other inputs (pyproject.toml dependencies, the locked "
                        "extras, build-system.requires or constraints-cpu.txt changed)")
    return problems


def check_python(lock: dict, version: tuple[int, int] = sys.version_info[:2]) -> str | None:
    """Why this interpreter cannot install the lock, or None."""
    wanted = lock.get("tool", {}).get("promptlam", {}).get("python", PYTHON)
    if f"{version[0]}.{version[1]}" != wanted:
        return f"the lock is for Python {wanted}; this is Python {version[0]}.{version[1]} (set PYTHON=python{wanted})"
    return None


def requirements(lock: dict, only: set[str] | None = None, exclude: set[str] = frozenset()) -> str:
    """Hashed pip requirement lines (``name==version --hash=sha256:...``) for the lock's packages."""
    lines = []
    for package in lock["packages"]:
        name = normalize(package["name"])
        if (only is not None and name not in only) or name in exclude:
            continue
        hashes = " ".join(f"--hash=sha256:{f['hashes']['sha256']}" for f in archives(package))
        lines.append(f"{name}=={package['version']} {hashes}")
    if only is not None and not lines:
        raise LockError(f"none of {', '.join(sorted(only))} is in the lock")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------ generating
def _toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string of ASCII is a valid TOML basic string


def write_lock(lock: dict) -> str:
    """TOML text of a lock in the shape pip writes (only the fields this project uses)."""
    out = ["# Generated by `make lock` (python3 lock/pylock.py generate) from pyproject.toml and",
           "# constraints-cpu.txt. Do not edit: `python3 lock/pylock.py check` verifies it.",
           f"lock-version = {_toml_string(lock['lock-version'])}",
           f"created-by = {_toml_string(lock['created-by'])}",
           f"requires-python = {_toml_string(lock['requires-python'])}",
           "environments = [" + ", ".join(_toml_string(e) for e in lock["environments"]) + "]", ""]
    for package in lock["packages"]:
        out += ["[[packages]]", f"name = {_toml_string(package['name'])}",
                f"version = {_toml_string(package['version'])}", ""]
        for key, table in [("wheels", w) for w in package.get("wheels", [])] + (
                [("sdist", package["sdist"])] if "sdist" in package else []):
            out += [f"[[packages.{key}]]" if key == "wheels" else f"[packages.{key}]",
                    f"name = {_toml_string(table['name'])}", f"url = {_toml_string(table['url'])}", "",
                    f"[packages.{key}.hashes]", f"sha256 = {_toml_string(table['hashes']['sha256'])}", ""]
    out += ["[tool.promptlam]"]
    out += [f"{key} = {_toml_string(value)}" for key, value in lock["tool"]["promptlam"].items()]
    return "\n".join(out) + "\n"


def public_url(file: dict, torch_index: str) -> str:
    """The https URL of a locked file. pip records a local copy as ``file://``: the CPU build of
    torch (a local copy of the file published at ``torch_index``) gets that URL; anything else
    local is refused, since Nix and other machines could not fetch it."""
    url = file["url"]
    if url.startswith("https://"):
        return url
    if file["name"].startswith("torch-") and "+cpu-" in file["name"]:
        return f"{torch_index.rstrip('/')}/{urllib.parse.quote(file['name'])}"
    raise LockError(f"{file['name']} was taken from {url}, which no other machine can fetch")


def finish(raw: dict, inputs: dict[str, list[str]], torch_index: str, torch_source: str,
           variant: Variant = CPU) -> dict:
    """pip's lock, made portable: directory entries dropped, local URLs made public, and the
    interpreter, platform and inputs recorded."""
    packages = []
    for package in sorted(raw["packages"], key=lambda p: normalize(p["name"])):
        if not archives(package):
            continue  # e.g. a local directory: the project itself is installed from the tree
        entry = {"name": normalize(package["name"]), "version": package["version"]}
        if package.get("wheels"):
            entry["wheels"] = [{"name": w["name"], "url": public_url(w, torch_index),
                                "hashes": {"sha256": w["hashes"]["sha256"]}} for w in package["wheels"]]
        if package.get("sdist"):
            s = package["sdist"]
            entry["sdist"] = {"name": s["name"], "url": public_url(s, torch_index),
                              "hashes": {"sha256": s["hashes"]["sha256"]}}
        packages.append(entry)
    return {
        "lock-version": raw.get("lock-version", "1.0"), "created-by": raw.get("created-by", "pip"),
        "requires-python": REQUIRES_PYTHON, "environments": [ENVIRONMENT], "packages": packages,
        "tool": {"promptlam": {"python": PYTHON, "extras": ",".join(variant.extras),
                               "torch-source": torch_source, "inputs-sha256": fingerprint(inputs)}},
    }


def local_torch_wheel(pins: dict[str, str]) -> str | None:
    """A CPU build of the pinned torch in pip's find-links folders (PIP_FIND_LINKS), if any."""
    for folder in os.environ.get("PIP_FIND_LINKS", "").split():
        folder = folder.removeprefix("file://")
        for path in glob.glob(os.path.join(folder, f"torch-{pins.get('torch', '')}+cpu-cp311-*.whl")):
            return folder
    return None


def generate(torch_index: str, variant: Variant = CPU) -> None:
    """Resolve the inputs with ``pip lock`` (PyPI only, this machine's pip config ignored) in a
    throwaway virtual environment, and write the variant's lock file."""
    if sys.version_info[:2] != tuple(int(x) for x in PYTHON.split(".")):
        raise LockError(f"lock with Python {PYTHON} (the wheels are cp311); this is {sys.version.split()[0]}")
    inputs = lock_inputs(variant)
    pins = exact_pins(inputs)
    with tempfile.TemporaryDirectory(prefix="promptlam-lock-") as tmp:
        tmp = Path(tmp)
        (tmp / "requirements.in").write_text("\n".join(inputs["requirements"] + inputs["build"]) + "\n")
        (tmp / "constraints.txt").write_text("\n".join(inputs["constraints"]) + "\n")
        env = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        env.pop("PIP_INDEX_URL", None)
        env.pop("PIP_EXTRA_INDEX_URL", None)
        links = local_torch_wheel(pins)
        sources = ["--index-url", INDEX]
        if variant.pypi_torch:  # a local copy of the CPU build must not stand in for it
            env.pop("PIP_FIND_LINKS", None)
            torch_source = INDEX
        elif links:  # a local copy of the CPU wheel: no need to reach the torch index
            sources += ["--find-links", links]
            torch_source = "a local copy of the file at the torch-index URL (its sha256 is that copy's)"
        else:
            env.pop("PIP_FIND_LINKS", None)
            sources += ["--extra-index-url", torch_index]
            torch_source = torch_index
        subprocess.run([sys.executable, "-m", "venv", str(tmp / "venv")], check=True)
        pip = [str(tmp / "venv" / "bin" / "python"), "-m", "pip"]
        subprocess.run(pip + ["install", "--quiet", PIP_FOR_LOCKING], check=True, env=env)
        out = subprocess.run(pip + ["lock", "--quiet", *sources, "-c", str(tmp / "constraints.txt"),
                                    "-r", str(tmp / "requirements.in"), "-o", "-"],
                             check=True, env=env, stdout=subprocess.PIPE, text=True, cwd=tmp).stdout
    lock = finish(tomllib.loads(out), inputs, torch_index, torch_source, variant)
    problems = check(lock, inputs)
    if problems:
        raise LockError(f"the new lock is incomplete: {problems[0]}")
    variant.lock.write_text(write_lock(lock))
    print(f"{variant.lock.relative_to(ROOT)}: {len(lock['packages'])} packages, each with its sha256")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="re-resolve and write the lock")
    gen.add_argument("--torch-index", default=TORCH_INDEX)
    chk = sub.add_parser("check", help="verify the lock against pyproject.toml")
    chk.add_argument("--python", action="store_true", help="also check this interpreter can install it")
    req = sub.add_parser("requirements", help="print hashed pip requirements")
    req.add_argument("--only", action="append", default=None)
    req.add_argument("--exclude", action="append", default=[])
    for command in (gen, chk, req):
        command.add_argument("--variant", choices=sorted(VARIANTS), default="cpu",
                             help="cpu: lock/pylock.toml (default); cuda: lock/pylock-cuda.toml")
    args = parser.parse_args(argv)
    variant = VARIANTS[args.variant]
    try:
        if args.command == "generate":
            generate(args.torch_index, variant)
        elif args.command == "check":
            lock = read_lock(variant.lock, variant.make_lock)
            problems = check(lock, lock_inputs(variant))
            if problems:
                more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
                raise LockError(f"{variant.lock.relative_to(ROOT)} is stale: {problems[0]}{more}; "
                                f"run `{variant.make_lock}`")
            if args.python and (reason := check_python(lock)):
                raise LockError(reason)
        else:
            only = {normalize(n) for n in args.only} if args.only else None
            lock = read_lock(variant.lock, variant.make_lock)
            sys.stdout.write(requirements(lock, only, {normalize(n) for n in args.exclude}))
    except LockError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
