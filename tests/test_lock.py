"""The hashed lock (lock/pylock.toml): it matches pyproject.toml, the environment is exactly the lock,
provenance records it, and the flake builds from it (evaluated against a stub nixpkgs when nix is
installed)."""

from __future__ import annotations

import copy
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("pylock", ROOT / "lock" / "pylock.py")
pylock = importlib.util.module_from_spec(_spec)
sys.modules["pylock"] = pylock  # its dataclass looks its module up there
_spec.loader.exec_module(pylock)

BUILD_TOOLS = {"pip", "setuptools"}  # locked for `make setup`; the flake builds with its own


@pytest.fixture(scope="module")
def lock() -> dict:
    return pylock.read_lock()


@pytest.fixture(scope="module")
def inputs() -> dict:
    return pylock.lock_inputs()


@pytest.mark.parametrize("variant", pylock.VARIANTS.values(), ids=list(pylock.VARIANTS))
def test_lock_matches_pyproject(variant):
    lock = pylock.read_lock(variant.lock)
    assert pylock.check(lock, pylock.lock_inputs(variant)) == []
    assert lock["tool"]["promptlam"]["extras"] == ",".join(variant.extras)
    for package in lock["packages"]:
        files = pylock.archives(package)
        assert files, package["name"]
        for file in files:
            assert len(file["hashes"]["sha256"]) == 64, file["name"]
            assert file["url"].startswith("https://"), file["url"]


def test_the_gpu_lock_is_the_cpu_lock_with_cuda_torch_and_molmo_v1s_extra(lock):
    cpu = {p["name"]: p["version"] for p in lock["packages"]}
    cuda = {p["name"]: p["version"] for p in pylock.read_lock(pylock.VARIANTS["cuda"].lock)["packages"]}
    # Spelled out for the pins that matter most: torch is the pinned release, CPU or CUDA build.
    assert (cpu["torch"], cuda["torch"]) == ("2.13.0+cpu", "2.13.0")
    assert {"torchvision", "einops", "tensorflow-cpu", "nvidia-cudnn-cu13"} <= cuda.keys()
    # Every other package at the same version: both environments compute with the same code.
    assert {name: (version, cuda.get(name)) for name, version in cpu.items()
            if name != "torch" and cuda.get(name) != version} == {}


@pytest.mark.parametrize("change, expected", [
    (lambda i: i["requirements"].__setitem__(0, "torch==2.14.0"), "torch is pinned at 2.14.0 but locked at 2.13.0+cpu"),
    (lambda i: i["requirements"].append("einops==0.8.2"), "einops==0.8.2 is pinned but not in the lock"),
    (lambda i: i["requirements"].append("einops>=0.8"), "is not an exact pin"),
    (lambda i: i["build"].append("hatchling"), "build-system requirement hatchling is not in the lock"),
    (lambda i: i["constraints"].__setitem__(0, "torch==2.12.0"), "constraints-cpu.txt: torch==2.12.0"),
])
def test_check_finds_a_stale_lock(lock, inputs, change, expected):
    changed = copy.deepcopy(inputs)
    change(changed)
    problems = pylock.check(lock, changed)
    assert any(expected in p for p in problems), problems
    assert any("made from other inputs" in p for p in problems), problems


def test_check_finds_an_unhashed_or_local_file(lock, inputs):
    broken = copy.deepcopy(lock)
    broken["packages"][0]["wheels"][0]["hashes"] = {}
    broken["packages"][1]["wheels"][0]["url"] = "file:///opt/wheels/x.whl"
    problems = pylock.check(broken, inputs)
    assert any("has no sha256" in p for p in problems) and any("no https URL" in p for p in problems)


def test_a_removed_dependency_makes_the_lock_stale(lock, inputs):
    fewer = copy.deepcopy(inputs)
    fewer["requirements"] = [r for r in fewer["requirements"] if not r.startswith("seaborn")]
    assert pylock.check(lock, fewer) == ["the lock was made from other inputs (pyproject.toml dependencies, "
                                         "the locked extras, build-system.requires or constraints-cpu.txt "
                                         "changed)"]


def test_python_version_is_checked(lock):
    assert pylock.check_python(lock, (3, 11)) is None
    assert "the lock is for Python 3.11; this is Python 3.12" in pylock.check_python(lock, (3, 12))


def test_requirements_cover_the_lock_with_hashes(lock):
    parts = [pylock.requirements(lock, only={"pip", "setuptools"}),
             pylock.requirements(lock, only={"torch"}),
             pylock.requirements(lock, exclude={"pip", "setuptools", "torch"})]
    lines = [line for part in parts for line in part.splitlines()]
    assert sorted(line.split("==")[0] for line in lines) == sorted(p["name"] for p in lock["packages"])
    assert all(" --hash=sha256:" in line for line in lines)
    assert parts[1].startswith("torch==2.13.0+cpu --hash=sha256:")
    with pytest.raises(pylock.LockError):
        pylock.requirements(lock, only={"torchvision"})


def test_local_copies_get_public_urls():
    torch = {"name": "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl",
             "url": "file:///opt/wheels/torch-2.13.0%2Bcpu-cp311-cp311-manylinux_2_28_x86_64.whl"}
    assert pylock.public_url(torch, "https://download.pytorch.org/whl/cpu/") == (
        "https://download.pytorch.org/whl/cpu/torch-2.13.0%2Bcpu-cp311-cp311-manylinux_2_28_x86_64.whl")
    with pytest.raises(pylock.LockError, match="no other machine can fetch"):
        pylock.public_url({"name": "numpy-2.4.6.whl", "url": "file:///opt/pypi/numpy-2.4.6.whl"}, "x")


def test_written_lock_reads_back(lock, tmp_path):
    path = tmp_path / "pylock.toml"
    path.write_text(pylock.write_lock(lock))
    assert pylock.read_lock(path) == lock


def _installed() -> dict[str, str]:
    from promptlam.provenance import installed_distributions
    return installed_distributions()


def test_environment_is_exactly_the_lock(lock):
    """`make setup` (or the flake) installed the lock and nothing else: lock/pylock.toml, or the
    GPU lock where `make setup VARIANT=cuda` installed PyPI's (CUDA) build of torch."""
    installed = dict(_installed())
    if "+cpu" not in installed.get("torch", "+cpu"):
        lock = pylock.read_lock(pylock.VARIANTS["cuda"].lock)
    assert installed.pop("promptlam") == "0.1.0" or "PROMPTLAM_NIX_PYTHON" in os.environ
    expected = {p["name"]: p["version"] for p in lock["packages"]}
    if "PROMPTLAM_NIX_PYTHON" in os.environ:
        expected = {k: v for k, v in expected.items() if k not in BUILD_TOOLS}
    differ = {k: (expected.get(k), installed.get(k)) for k in expected.keys() | installed.keys()
              if expected.get(k) != installed.get(k)}
    assert not differ, f"(locked, installed) differ: {differ}; rerun `make setup`"


def test_provenance_records_every_distribution():
    from promptlam.provenance import provenance

    record = provenance()
    assert record["packages"] == _installed() and len(record["packages"]) > 100
    assert record["packages"]["torch"] == importlib.metadata.version("torch")
    assert record["python"] == ".".join(map(str, sys.version_info[:3]))
    record["packages"]["torch"] = "changed"  # a caller's change does not leak into the next record
    assert provenance()["packages"]["torch"] == importlib.metadata.version("torch")
    json.dumps(record)


# ------------------------------------------------------------------------------ flake, with stubs
# A stand-in for nixpkgs with the few functions flake.nix calls. It checks what it is given: every
# fetch is a fixed-output https download named like the file, every wheel is built as a wheel,
# every sdist with a build system. Offline, nothing of the real nixpkgs can be built or evaluated.
STUB_NIXPKGS = r"""
{
  outputs = { self }:
    let
      system = "x86_64-linux";
      drv = name: attrs: derivation ({ inherit name system; builder = "/bin/sh"; args = [ "-c" "echo > $out" ]; } // attrs);
      fail = msg: throw "stub nixpkgs: ${msg}";
      fetchurl = { name, url, sha256 }:
        if builtins.match "https://.+" url == null then fail "${name}: ${url} is not an https URL"
        else if builtins.match "[0-9a-f]{64}" sha256 == null then fail "${name}: no sha256"
        else if builtins.match "[A-Za-z0-9+._?=-]+" name == null then fail "${name}: not a store name"
        else derivation { inherit name system url; builder = "/bin/sh"; args = [ "-c" "exit 1" ];
                          outputHashMode = "flat"; outputHashAlgo = "sha256"; outputHash = sha256; };
      buildPythonPackage = a:
        if (a.format or "") == "wheel" && builtins.match ".+\\.whl" a.src.name == null then fail "${a.pname}: wheel src ${a.src.name}"
        else if (a.format or "") != "wheel" && !(a.pyproject or false && a ? build-system) then fail "${a.pname}: sdist without a build system"
        else if builtins.match ".+\\.(whl|tar\\.gz|zip)" a.src.name == null then fail "${a.pname}: ${a.src.name}"
        else drv "python3.11-${a.pname}-${a.version}" { src = a.src; } // { inherit (a) pname version; };
      python311 = {
        pkgs = { inherit buildPythonPackage; setuptools = drv "setuptools" { }; };
        withPackages = f: let ps = f python311.pkgs; in
          drv "python3-3.11-env" { paths = ps; } // { lockedNames = map (p: p.pname) ps; lockedVersions = map (p: p.version) ps; };
      };
      lib = {
        genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
        makeLibraryPath = ps: builtins.concatStringsSep ":" (map (p: "${p}/lib") ps);
      };
      pkgs = {
        inherit lib fetchurl python311;
        stdenv.cc.cc.lib = drv "gcc-lib" { };
        zlib = drv "zlib" { }; libGL = drv "libGL" { }; libglvnd = drv "libglvnd" { }; mesa = drv "mesa" { };
        gnumake = drv "gnumake" { }; git = drv "git" { };
        mkShell = a: drv "promptlam-shell" { inherit (a) shellHook PROMPTLAM_NIX_PYTHON LD_LIBRARY_PATH; deps = a.packages; };
        writeShellApplication = a: drv a.name { inherit (a) text; deps = a.runtimeInputs; };
        runCommand = name: env: script: drv name (env // { inherit script; });
      };
    in { inherit lib; legacyPackages.${system} = pkgs; };
}
"""


@pytest.fixture(scope="module")
def nix_flake(tmp_path_factory):
    if shutil.which("nix") is None:
        pytest.skip("nix is not installed (e.g. `apt-get install nix-bin`)")
    tmp = tmp_path_factory.mktemp("flake")
    stub, flake = tmp / "nixpkgs", tmp / "flake"
    stub.mkdir()
    (stub / "flake.nix").write_text(STUB_NIXPKGS)
    (flake / "lock").mkdir(parents=True)
    for name in ("flake.nix", "flake.lock", "lock/pylock.toml"):
        shutil.copy(ROOT / name, flake / name)
    shutil.copytree(ROOT / "src" / "promptlam", flake / "src" / "promptlam",
                    ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "NIX_CONFIG": "experimental-features = nix-command flakes\nbuild-users-group =\n"}
    args = ["--offline", "--no-write-lock-file", "--override-input", "nixpkgs", f"path:{stub}"]

    def nix(*command: str) -> str:
        out = subprocess.run(["nix", *command, *args], env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
        return out.stdout

    return nix, f"path:{flake}"


def test_flake_checks_with_a_stub_nixpkgs(nix_flake):
    nix, flake = nix_flake
    nix("flake", "check", "--no-build", flake)


def test_flake_environment_is_the_lock(nix_flake, lock):
    nix, flake = nix_flake
    names = json.loads(nix("eval", "--json", f"{flake}#packages.x86_64-linux.python.lockedNames"))
    versions = json.loads(nix("eval", "--json", f"{flake}#packages.x86_64-linux.python.lockedVersions"))
    expected = {p["name"]: p["version"] for p in lock["packages"] if p["name"] not in BUILD_TOOLS}
    assert dict(zip(names, versions)) == expected and len(names) == len(expected)
    shell = nix("eval", "--raw", f"{flake}#devShells.x86_64-linux.default.PROMPTLAM_NIX_PYTHON")
    assert shell.endswith("-python3-3.11-env/bin/python")
