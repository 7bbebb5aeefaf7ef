"""The hub models a config names: download them ahead, and check before any job that they are cached.

Jobs never touch the network (``loading.resolve_source`` reads the local Hugging Face cache only),
so compute nodes without internet need every model downloaded beforehand, on a machine that has
it, into the cache they share (``HF_HOME`` / ``HF_HUB_CACHE``). ``download_models`` does that at
each target's pinned revision (what ``hf download ID --revision REV`` does); ``check_models_cached``
fails in one line, without the network, when a model the requested targets need is missing, so
that a workflow stops before its first job instead of at the first target job.

Only hub models count: targets of other kinds (pixels, state, ...), local folders (tiny models)
and weights that ship in a package (``efficientnet-lite0``) have nothing to download.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from promptlam.errors import UserError

if TYPE_CHECKING:
    from promptlam.config import Config

HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")
"""What ``loading.resolve_source`` takes for a hub id (anything else is a folder or an error there)."""

DOWNLOAD_COMMAND = "promptlam models download"
"""The command that fills the cache (named in every error)."""


@dataclass(frozen=True)
class HubPin:
    """One hub model at one revision, and the targets that load it."""

    model: str
    revision: str | None
    targets: tuple[str, ...]

    def hf_command(self) -> str:
        """The equivalent ``hf download`` command line."""
        return f"hf download {self.model}" + (f" --revision {self.revision}" if self.revision else "")


def is_hub_id(model: str) -> bool:
    """Whether a target's ``model`` names a hub repository rather than a local folder or packaged weights."""
    return bool(HUB_ID.fullmatch(model)) and not Path(model).expanduser().is_dir()


def hub_models(config: Config, targets: Iterable[str] | None = None) -> list[HubPin]:
    """The hub models (id and revision, in config order) that ``targets`` load (default: every target).

    A comparison's variants of a target share its model: each (model, revision) is listed once,
    with every target name that needs it. An unknown target name is a one-line error.
    """
    names = list(config.targets) if targets is None else list(dict.fromkeys(targets))
    unknown = [name for name in names if name not in config.targets]
    if unknown:
        raise UserError(f"unknown target(s) {', '.join(unknown)}: expected names of the config's targets")
    pins: dict[tuple[str, str | None], list[str]] = {}
    for name in names:
        model = getattr(config.targets[name], "model", None)
        if isinstance(model, str) and is_hub_id(model):
            pins.setdefault((model, config.targets[name].revision), []).append(name)
    return [HubPin(model, revision, tuple(users)) for (model, revision), users in pins.items()]


def cached_snapshot(pin: HubPin, cache_dir: str | Path | None = None) -> tuple[Path | None, str]:
    """The cached snapshot folder of ``pin`` if it is complete, else None and why not. No network.

    Complete means what a load reads first: ``config.json``, the code files its ``auto_map`` names
    (remote-code models), and every weight file (all shards an index lists). A download cut short
    leaves a snapshot without some of them.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    if not pin.revision:
        return None, "no revision is pinned"
    try:
        folder = Path(snapshot_download(pin.model, revision=pin.revision, cache_dir=cache_dir, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError):
        return None, "is not in the local Hugging Face cache"
    if not (folder / "config.json").is_file():
        return None, "is cached without its config.json (an interrupted download?)"
    modules = set()
    for name in ("config.json", "preprocessor_config.json", "processor_config.json", "tokenizer_config.json"):
        if (folder / name).is_file():
            try:
                auto_map = json.loads((folder / name).read_text()).get("auto_map", {})
            except (OSError, ValueError, AttributeError):
                return None, f"has an unreadable {name} (an interrupted download?)"
            # "module.Class" names a file of this repository ("other/repo--module.Class" one of another)
            modules |= {str(ref).rsplit(".", 1)[0] for ref in _flat(auto_map.values()) if "--" not in str(ref)}
    missing = sorted(f"{module}.py" for module in modules if not (folder / f"{module}.py").is_file())
    missing += _missing_weights(folder)
    if missing:
        return None, f"is cached without {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''} (an interrupted download?)"
    return folder, ""


def _flat(values: Iterable[object]) -> Iterable[object]:
    # auto_map values are "module.Class", or a [slow, fast] pair for tokenizers (either may be null).
    for value in values:
        if isinstance(value, (list, tuple)):
            yield from (item for item in value if item)
        elif value:
            yield value


def _missing_weights(folder: Path) -> list[str]:
    """Weight files a load of ``folder`` needs but that are absent (the sharded index's, or any single file)."""
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (folder / index).is_file():
            try:
                shards = set(json.loads((folder / index).read_text())["weight_map"].values())
            except (OSError, ValueError, KeyError):
                return [index]
            return sorted(shard for shard in shards if not (folder / shard).is_file())
    if any(folder.glob("*.safetensors")) or any(folder.glob("*.bin")):
        return []
    return ["model weights"]


def check_models_cached(config: Config, targets: Iterable[str] | None = None,
                        cache_dir: str | Path | None = None, config_hint: str = "--config config.yaml") -> None:
    """Raise a one-line ``UserError`` naming the first target whose hub model is not fully cached.

    For the workflow to call before any job, with the targets its requested jobs compute. Never
    touches the network. ``config_hint``: the config arguments that complete the command named.
    """
    problems = []
    for pin in hub_models(config, targets):
        folder, why = cached_snapshot(pin, cache_dir)
        if folder is None:
            problems.append((pin, why))
    if not problems:
        return
    pin, why = problems[0]
    more = f" ({len(problems) - 1} more model(s) missing)" if len(problems) > 1 else ""
    command = f"{DOWNLOAD_COMMAND} {config_hint}".strip()
    if not pin.revision:
        raise UserError(
            f"targets.{pin.targets[0]}: {pin.model} has no pinned revision; set `revision:` to a commit hash "
            f"(`{command}` downloads the unpinned ones at main and prints their commits){more}")
    raise UserError(
        f"targets.{pin.targets[0]}: {pin.model} at revision {pin.revision} {why}; jobs download nothing, so fetch "
        f"it first on a machine with internet: `{command}` (or `{pin.hf_command()}`){more}")


def download_models(config: Config, targets: Iterable[str] | None = None, cache_dir: str | Path | None = None,
                    dry_run: bool = False) -> list[tuple[HubPin, str]]:
    """Download each hub model ``targets`` need at its pinned revision (network); return (pin, commit).

    An unpinned model is downloaded at ``main``, and the commit that resolved to is returned, to
    be pinned in the config (jobs load pinned models only). With ``dry_run`` nothing is fetched and
    the commit is the revision as configured.
    """
    done = []
    for pin in hub_models(config, targets):
        if dry_run:
            done.append((pin, pin.revision or "main"))
            continue
        from huggingface_hub import snapshot_download

        folder = snapshot_download(pin.model, revision=pin.revision, cache_dir=cache_dir)
        done.append((pin, Path(folder).name))
    return done
