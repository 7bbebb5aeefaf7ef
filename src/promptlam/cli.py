"""Command-line entry points: ``python -m promptlam <stage> <command>`` (or ``promptlam ...``).

Each command takes explicit paths plus the config (``--config FILE`` and/or ``--config-json``),
so the Snakemake rules and a person at a shell run exactly the same code.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
from collections.abc import Callable
from pathlib import Path

from promptlam.errors import UserError


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", action="append", default=[], metavar="FILE",
                        help="config YAML (repeatable, later files override earlier ones)")
    parser.add_argument("--config-json", action="append", default=[], metavar="JSON",
                        help="config overrides as a JSON object (applied after --config files)")


def _config(args: argparse.Namespace):
    """The command's config, loaded once (a GPU decision may read it before the handler does)."""
    if "loaded_config" not in vars(args):
        from promptlam.config import load_config

        args.loaded_config = load_config(args.config, args.config_json)
    return args.loaded_config


def _write_or_print(text: str, out: str | None) -> None:
    if out:
        from promptlam.io import atomic_output

        with atomic_output(out) as tmp:
            Path(tmp).write_text(text)
    else:
        sys.stdout.write(text)


# -------------------------------------------------------------------------------------- config
def cmd_config_schema(args: argparse.Namespace) -> None:
    from promptlam.config import json_schema

    _write_or_print(json.dumps(json_schema(), indent=2) + "\n", args.out)


def cmd_config_docs(args: argparse.Namespace) -> None:
    from promptlam.config import markdown_reference

    _write_or_print(markdown_reference() + "\n", args.out)


def cmd_config_check(args: argparse.Namespace) -> None:
    import yaml

    config = _config(args)
    sys.stdout.write(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))


# ------------------------------------------------------------------------------------ rollouts
def cmd_rollouts_collect(args: argparse.Namespace) -> None:
    from promptlam.data.collect import collect

    config = _config(args)
    stats = collect(config, args.task, args.split, args.out, trajectories=args.trajectories)
    print(f"{args.out}: {stats.trajectories} trajectories, {stats.frames} frames, "
          f"{stats.successes} successful, {stats.frames_per_second:.1f} frames/s")


def cmd_rollouts_labelled(args: argparse.Namespace) -> None:
    from promptlam.data.labelled import write_labelled_subset

    config = _config(args)
    chosen = write_labelled_subset(args.source, args.budget, config.seed, args.out)
    print(f"{args.out}: trajectories {sorted(chosen.tolist())}")


def cmd_rollouts_preview(args: argparse.Namespace) -> None:
    from promptlam.data.preview import write_previews

    write_previews(args.source, args.sheet, args.gif)


def cmd_rollouts_inspect(args: argparse.Namespace) -> None:
    from promptlam.data.rollout_file import RolloutFile

    for path in args.files:
        with RolloutFile(path) as f:
            f.verify()  # every chunk's checksum: damaged bytes fail here, in one line
            table = f.trajectories
            gripper = f["gripper_px"][()]
            motion = []
            for i in range(f.n_trajectories):
                rows = f.rows(i)
                motion.append(np.linalg.norm(np.diff(gripper[rows], axis=0), axis=1))
            motion = np.concatenate(motion) if motion else np.zeros(0)
            summary = {
                "file": str(path), "task": f.task, "split": f.split, "dataset_id": f.dataset_id,
                "trajectories": f.n_trajectories, "frames": f.n_frames,
                "success_rate": float(table["success"].mean()),
                "mean_length": float(table["length"].mean()),
                "gripper_px_per_step": {
                    "mean": float(motion.mean()), "median": float(np.median(motion)),
                    "share_below_half_pixel": float((motion < 0.5).mean()),
                },
            }
        print(json.dumps(summary, indent=2))


# ------------------------------------------------------------------------------------- targets
def _target_runs_a_model(args: argparse.Namespace) -> bool:
    """Only a model target runs on CUDA: state, pixel and frame targets take no device."""
    from promptlam.methods import MODEL_TARGET_KINDS

    target = _config(args).targets.get(args.target)
    return target is not None and target.kind in MODEL_TARGET_KINDS


def cmd_targets_compute(args: argparse.Namespace) -> None:
    from promptlam.targets import compute_target

    config = _config(args)
    stats = compute_target(config, args.target, args.task, args.rollouts, args.out, workers=args.workers)
    rate = f", {stats.frames_per_second:.1f} frames/s (final batch size {stats.batch_size})" if stats else ""
    print(f"{args.out}: target {args.target} of {args.task}{rate}")


def cmd_targets_tiny_model(args: argparse.Namespace) -> None:
    from promptlam.io import atomic_directory
    from promptlam.vlm.families import get_family

    family = get_family(args.family)
    with atomic_directory(args.out) as tmp:
        family.build_tiny(tmp)
    print(f"{args.out}: tiny random {args.family} model")


def cmd_models(args: argparse.Namespace) -> None:
    """`models download`: fetch the targets' hub models at their pinned revisions (network);
    `models check`: fail in one line when one is not in the local cache (no network)."""
    from promptlam.vlm.cache import check_models_cached, download_models

    config, targets = _config(args), args.target or None
    if args.command == "check":
        check_models_cached(config, targets, config_hint=" ".join(f"--config {path}" for path in args.config))
        print("every hub model of the targets is in the local Hugging Face cache")
        return
    for pin, commit in download_models(config, targets, dry_run=args.dry_run):
        if args.dry_run:
            print(pin.hf_command())
        elif pin.revision:
            print(f"{pin.model} at {commit}: cached (targets {', '.join(pin.targets)})")
        else:
            print(f"{pin.model}: not pinned, downloaded main = {commit}; set `revision: {commit}` in targets "
                  f"{', '.join(pin.targets)} (jobs load pinned models only)")


def cmd_targets_inspect(args: argparse.Namespace) -> None:
    from promptlam.data.target_file import TargetFile

    for path in args.files:
        with TargetFile(path) as f:
            f.verify()
            attrs = f.attrs
            mean, std = f.moments().mean_std()
            print(json.dumps({
                "file": str(path), "target": attrs["target"], "kind": f.kind, "task": attrs["task"],
                "frames": int(attrs["n_frames"]), "shape_per_frame": list(f.frame_shape),
                "prompt": attrs.get("prompt"), "mean_of_means": float(np.mean(mean)),
                "mean_of_stds": float(np.mean(std)), "provenance": f.provenance,
            }, indent=2))


# ----------------------------------------------------------------------------------------- lam
def _run_key(args: argparse.Namespace, config):
    """The LAM run the arguments name, checked against the config's method table."""
    from promptlam.runs import RunKey

    if args.target is None or args.latent_dim is None:
        raise UserError("--target and --latent-dim name the LAM run")
    if args.latent_dim < 1:
        raise UserError(f"--latent-dim: {args.latent_dim}; a latent action needs at least 1 dimension")
    try:
        config.check_run("--method/--target/--formulation", args.method, args.target, args.formulation)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.screening is not None and args.screening < 2:
        raise UserError(f"--screening: {args.screening} trajectories; a screening run needs at least 2")
    return RunKey(args.method, args.target, args.formulation, args.latent_dim, args.seed, args.screening)


def _paths(given: list[str] | None, default: list[Path], flag: str, tasks: list[str]) -> list[Path]:
    """Explicit per-task paths (one per task, in the config's task order) or the defaults."""
    if given is None:
        return default
    if len(given) != len(tasks):
        raise UserError(f"{flag}: expected one file per task ({len(tasks)}: {', '.join(tasks)}), got {len(given)}")
    return [Path(path) for path in given]


def cmd_lam_train(args: argparse.Namespace) -> None:
    from promptlam.lam.data import TaskFiles
    from promptlam.lam.train import heldout_summary, train_run
    from promptlam.runs import rollout_paths

    config = _config(args)
    seeds = list(dict.fromkeys(args.seed))
    if args.out and len(args.out) != len(seeds):
        raise UserError(f"--out: expected one run folder per --seed ({len(seeds)}), got {len(args.out)}")
    runs = [_run_key(argparse.Namespace(**{**vars(args), "seed": seed}), config) for seed in seeds]
    root, tasks = Path(args.root), list(config.tasks)
    rollouts = _paths(args.rollouts, rollout_paths(config, "train", root), "--rollouts", tasks)
    default_targets = runs[0].target_paths(config, root)
    targets = _paths(args.targets, default_targets, "--targets", tasks) if default_targets else [None] * len(tasks)
    # several seeds: one after another in this process, sharing its start-up (bench/sweep_batching.py)
    for i, run in enumerate(runs):
        out = Path(args.out[i] if args.out else root / run.path)
        metrics = train_run(config, run, [TaskFiles(r, t) for r, t in zip(rollouts, targets)], out, tasks)
        if metrics.get("heldout_probe"):
            print(f"{out}: {heldout_summary(metrics)}")


# -------------------------------------------------------------------------------------- policy
def _policy_key(args: argparse.Namespace, config):
    from promptlam.methods import BC_ACTIONS
    from promptlam.runs import PolicyKey

    if args.method == BC_ACTIONS:
        return PolicyKey(args.seed, trajectories=args.screening)
    if getattr(args, "budget", 0) is None:
        raise UserError("--budget: a latent policy is decoded with a labelled budget (trajectories per task)")
    return PolicyKey(args.seed, _run_key(args, config))


def cmd_policy_bc(args: argparse.Namespace) -> None:
    from promptlam.policy.train import train_policy
    from promptlam.runs import rollout_paths

    config = _config(args)
    key = _policy_key(args, config)
    root, tasks = Path(args.root), list(config.tasks)
    rollouts = _paths(args.rollouts, rollout_paths(config, "train", root), "--rollouts", tasks)
    out = Path(args.out or root / key.path)
    lam_dir = Path(args.lam or root / key.lam.path) if key.lam else None
    metrics = train_policy(config, key, rollouts, out, tasks, lam_dir)
    print(f"{out}: behaviour cloning loss {metrics['final_loss']:.4f}")


def cmd_policy_decoder(args: argparse.Namespace) -> None:
    from promptlam.policy.train import train_decoder
    from promptlam.runs import labelled_paths, rollout_paths

    config = _config(args)
    key = _policy_key(args, config)
    if key.lam is None:
        raise UserError("--method bc-actions: the true-action policy needs no decoder")
    root, tasks = Path(args.root), list(config.tasks)
    rollouts = _paths(args.rollouts, rollout_paths(config, "train", root), "--rollouts", tasks)
    labelled = _paths(args.labelled, labelled_paths(config, args.budget, root), "--labelled", tasks)
    out = Path(args.out or root / key.decoder_path(args.budget))
    metrics = train_decoder(config, key, args.budget, labelled, rollouts, Path(args.policy or root / key.path), out,
                            tasks)
    print(f"{out}: decoder MSE {metrics['train_mse']:.4f} on {metrics['transitions']} labelled transitions "
          f"(action variance {metrics['action_variance']:.4f})")


def _evaluation_outputs(args: argparse.Namespace, config, default) -> dict[str, Path]:
    """Background split -> evaluation file: --backgrounds (default: the config's
    evaluation.backgrounds) with one --out each, or the default path of each."""
    backgrounds = args.backgrounds or list(config.evaluation.backgrounds)
    if len(set(backgrounds)) != len(backgrounds):
        raise UserError(f"--backgrounds: each split at most once, got {' '.join(backgrounds)}")
    if args.out is None:
        return {background: Path(default(background)) for background in backgrounds}
    if len(args.out) != len(backgrounds):
        raise UserError(f"--out: expected one file per background ({', '.join(backgrounds)}), got {len(args.out)}")
    return dict(zip(backgrounds, map(Path, args.out)))


def _print_evaluations(outs: dict[str, Path], results: dict[str, dict]) -> None:
    for background, result in results.items():
        rates = ", ".join(f"{task} {entry['success_rate']:.2f}" for task, entry in result["tasks"].items())
        print(f"{outs[background]}: success rate {result['success_rate']:.3f} ({rates})")


def cmd_policy_evaluate(args: argparse.Namespace) -> None:
    from promptlam.policy.evaluate import evaluate
    from promptlam.runs import rollout_paths

    config = _config(args)
    key = _policy_key(args, config)
    root, tasks = Path(args.root), list(config.tasks)
    rollouts = _paths(args.rollouts, rollout_paths(config, "train", root), "--rollouts", tasks)
    decoder_dir = Path(args.decoder or root / key.decoder_path(args.budget)) if key.lam else None
    outs = _evaluation_outputs(args, config, lambda background: root / key.eval_path(args.budget, background))
    results = evaluate(config, key, tasks, rollouts, outs, Path(args.policy or root / key.path),
                       args.budget if key.lam else None, decoder_dir, args.workers)
    _print_evaluations(outs, results)


def cmd_policy_random(args: argparse.Namespace) -> None:
    from promptlam.policy.evaluate import evaluate
    from promptlam.runs import RANDOM_EVAL, rollout_paths

    config = _config(args)
    root, tasks = Path(args.root), list(config.tasks)
    rollouts = _paths(args.rollouts, rollout_paths(config, "train", root), "--rollouts", tasks)
    outs = _evaluation_outputs(args, config, lambda background: root / RANDOM_EVAL.format(background=background))
    _print_evaluations(outs, evaluate(config, None, tasks, rollouts, outs, workers=args.workers))


# ------------------------------------------------------------------------------------- figures
def cmd_figures_fig1(args: argparse.Namespace) -> None:
    from promptlam.figures import make_fig1

    config = _config(args)
    config.check_figures("--config")
    summary = make_fig1(config, Path(args.root), Path(args.pdf), Path(args.csv))
    print(summary.to_string(index=False))


def _named_figure(args: argparse.Namespace, section: str, **templates: str):
    """The config, checked, for figure ``args.name`` of ``figures.<section>``, and its output
    paths: each given flag, else its template (``promptlam.runs``) filled with the name."""
    config = _config(args)
    config.check_figures("--config")
    figures = getattr(config.figures, section)
    if args.name not in figures:
        raise UserError(f"figures.{section}: no figure {args.name!r} (configured: {', '.join(figures) or 'none'})")
    return config, [Path(getattr(args, flag) or template.format(name=args.name)) for flag, template in templates.items()]


def cmd_figures_sweep(args: argparse.Namespace) -> None:
    from promptlam.figures import make_sweep
    from promptlam.runs import FIGURE_CSV, FIGURE_PDF

    config, (pdf, csv) = _named_figure(args, "sweeps", pdf=FIGURE_PDF, csv=FIGURE_CSV)
    print(make_sweep(config, args.name, Path(args.root), pdf, csv).to_string(index=False))


def cmd_figures_comparison(args: argparse.Namespace) -> None:
    from promptlam.figures import make_comparison
    from promptlam.runs import FIGURE_CSV, FIGURE_PDF, TABLE_TEX

    config, (pdf, csv, tex) = _named_figure(args, "comparisons", pdf=FIGURE_PDF, csv=FIGURE_CSV, tex=TABLE_TEX)
    table = make_comparison(config, args.name, Path(args.root), pdf, csv, tex)
    print(table.drop(columns=["figure", "kind"]).to_string(index=False))


def cmd_figures_summary(args: argparse.Namespace) -> None:
    from promptlam.summary import make_summary

    config = _config(args)
    config.check_figures("--config")
    print(make_summary(config, Path(args.root), Path(args.csv), Path(args.txt)), end="")


def cmd_figures_screening_transfer(args: argparse.Namespace) -> None:
    from promptlam.figures import make_transfer

    config = _config(args)
    config.check_figures("--config")
    if config.figures.screening_transfer is None:
        raise UserError("figures.screening_transfer: not configured (null)")
    print(make_transfer(config, Path(args.root), Path(args.pdf), Path(args.csv)).to_string(index=False))


def cmd_figures_lam_probes(args: argparse.Namespace) -> None:
    from promptlam.figures import make_lam_probes

    config = _config(args)
    make_lam_probes(config, Path(args.root), Path(args.pdf), Path(args.csv))
    print(f"{args.pdf}, {args.csv}: held-out probes of {len(config.lam.runs)} run specs")


# ---------------------------------------------------------------------------------------- plan
def cmd_plan(args: argparse.Namespace) -> None:
    from promptlam.plan import UNIT_COSTS, figure_names, format_plan, measured_units, plan_table

    config = _config(args)
    config.check_figures()
    known = figure_names(config)
    unknown = [name for name in args.figures if name not in known]
    if unknown:
        raise UserError(f"plan: no figure {', '.join(unknown)} in this config (figures: {', '.join(known)})")
    units = measured_units(args.measured) if args.measured else UNIT_COSTS
    rows = plan_table(config, args.figures or None, units)
    if args.csv:
        import pandas as pd

        from promptlam.io import atomic_output

        with atomic_output(args.csv) as tmp:
            pd.DataFrame(rows).to_csv(tmp, index=False)
    print(format_plan(rows, units))
    if args.partitions:
        from promptlam.cluster import read_partitions
        from promptlam.placement import format_placement, read_profile
        from promptlam.plan import Work, figure_work

        work = Work()
        for name in args.figures or known:
            work = work | figure_work(config, name)
        print()
        print(format_placement(config, work, read_profile(args.profile), read_partitions(args.partitions), args.partitions))


# --------------------------------------------------------------------------------------- slurm
def cmd_slurm_partitions(args: argparse.Namespace) -> None:
    from promptlam.cluster import cluster_partitions, partitions_yaml
    from promptlam.io import atomic_output

    text = partitions_yaml(cluster_partitions())
    if args.out is None:
        print(text, end="")
        return
    with atomic_output(args.out) as tmp:
        Path(tmp).write_text(text)
    print(f"{args.out}: the limits of this cluster's partitions (sinfo); "
          f"export SNAKEMAKE_SLURM_PARTITIONS={Path(args.out).resolve()}")


# ---------------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="promptlam", description=__doc__.splitlines()[0])
    stages = parser.add_subparsers(dest="stage", required=True)

    def command(stage: argparse._SubParsersAction, name: str, handler: Callable, help: str,
                config: bool = False, gpu: bool | Callable[[argparse.Namespace], bool] = False
                ) -> argparse.ArgumentParser:
        """A subcommand; ``gpu``: it uses CUDA (or a test of its arguments saying when it does),
        so it claims a GPU of the machine's pool before its work."""
        sub = stage.add_parser(name, help=help, description=help)
        sub.set_defaults(handler=handler, gpu=gpu)
        if config:
            _add_config_args(sub)
        return sub

    config = stages.add_parser("config", help="the workflow configuration").add_subparsers(dest="command", required=True)
    command(config, "schema", cmd_config_schema, "print the JSON schema of config.yaml").add_argument("--out")
    command(config, "docs", cmd_config_docs, "print the reference of every config key").add_argument("--out")
    command(config, "check", cmd_config_check, "validate a config and print it with defaults filled in", config=True)

    rollouts = stages.add_parser("rollouts", help="Distracting MetaWorld data").add_subparsers(dest="command", required=True)
    sub = command(rollouts, "collect", cmd_rollouts_collect, "collect expert rollouts of one task and split", config=True)
    sub.add_argument("--task", required=True, help="MetaWorld v3 task, e.g. reach-v3")
    sub.add_argument("--split", required=True, choices=("train", "eval"))
    sub.add_argument("--out", required=True, help="rollout file to write (.h5)")
    sub.add_argument("--trajectories", type=int, help="override the config's trajectory count")
    sub = command(rollouts, "labelled", cmd_rollouts_labelled, "draw a labelled subset from a train rollout file", config=True)
    sub.add_argument("--source", required=True, help="train rollout file")
    sub.add_argument("--budget", required=True, type=int, help="trajectories in the subset")
    sub.add_argument("--out", required=True, help="subset file to write (.h5)")
    sub = command(rollouts, "preview", cmd_rollouts_preview, "contact sheet PNG and GIF of a rollout file")
    sub.add_argument("--source", required=True)
    sub.add_argument("--sheet", required=True, help="PNG to write")
    sub.add_argument("--gif", required=True, help="GIF to write")
    sub = command(rollouts, "inspect", cmd_rollouts_inspect, "print a summary of rollout files")
    sub.add_argument("files", nargs="+")

    targets = stages.add_parser("targets", help="forward-model targets (VLM representations, ...)").add_subparsers(dest="command", required=True)
    sub = command(targets, "compute", cmd_targets_compute, "compute a named target for one task's rollout file",
                  config=True, gpu=_target_runs_a_model)
    sub.add_argument("--target", required=True, help="name of an entry of the config's targets")
    sub.add_argument("--task", required=True)
    sub.add_argument("--rollouts", required=True, help="rollout file (.h5) of the task")
    sub.add_argument("--out", required=True, help="target file to write (.h5)")
    sub.add_argument("--workers", type=int, help="preprocessing worker processes (default: 0 on CPU, up to 4 with a GPU)")
    sub = command(targets, "tiny-model", cmd_targets_tiny_model, "save a tiny random model of a family (for tests and the smoke profile)")
    sub.add_argument("--family", required=True)
    sub.add_argument("--out", required=True, help="folder to write")
    sub = command(targets, "inspect", cmd_targets_inspect, "print a summary of target files")
    sub.add_argument("files", nargs="+")
    models = stages.add_parser("models", help="the targets' hub models: download ahead, check the cache").add_subparsers(dest="command", required=True)
    for name, help in (("download", "download the hub models of the targets at their pinned revisions (needs internet)"),
                       ("check", "fail in one line if a hub model of the targets is not in the local cache (no network)")):
        sub = command(models, name, cmd_models, help, config=True)
        sub.add_argument("--target", action="append", metavar="NAME", help="only this target's model (repeatable; default: all)")
        if name == "download":
            sub.add_argument("--dry-run", action="store_true", help="print the `hf download` commands instead")

    from promptlam.methods import BC_ACTIONS, FORMULATIONS, METHODS

    def run_args(sub: argparse.ArgumentParser, methods: tuple[str, ...], required: bool, seeds: bool = False) -> None:
        sub.add_argument("--method", required=True, choices=methods,
                         help="the LAM method" + (f" (or {BC_ACTIONS}: the true actions)" if BC_ACTIONS in methods else ""))
        sub.add_argument("--target", required=required, help="the LAM run's target (laom: ema)")
        sub.add_argument("--formulation", default="absolute", choices=FORMULATIONS, help="the LAM run's target formulation")
        sub.add_argument("--latent-dim", required=required, type=int, help="the LAM run's latent dim")
        if seeds:
            sub.add_argument("--seed", required=True, type=int, nargs="+",
                             help="the run's seed; several: their runs one after another in this process")
        else:
            sub.add_argument("--seed", required=True, type=int)
        sub.add_argument("--screening", type=int, metavar="N",
                         help="a screening run: trained on N train trajectories in all (default: all of them)")
        sub.add_argument("--root", default=".", help="folder of the default inputs and outputs (the workflow's working directory)")
        sub.add_argument("--rollouts", nargs="+", metavar="H5", help="train rollout files, one per task (default: under --root)")

    lam = stages.add_parser("lam", help="latent action models").add_subparsers(dest="command", required=True)
    sub = command(lam, "train", cmd_lam_train, "train (or resume) one latent action model run and probe it",
                  config=True, gpu=True)
    run_args(sub, tuple(METHODS), required=True, seeds=True)
    sub.add_argument("--targets", nargs="+", metavar="H5", help="vector target files, one per task (default: under --root)")
    sub.add_argument("--out", nargs="+",
                     help="run folder, one per --seed (default: runs/lam/{method}/{target}/{formulation}/ld{dim}/s{seed} under --root)")

    policy = stages.add_parser("policy", help="behaviour cloning, action decoders, online evaluation").add_subparsers(dest="command", required=True)
    policy_methods = (*METHODS, BC_ACTIONS)
    sub = command(policy, "bc", cmd_policy_bc, "behaviour-clone a LAM's latent actions (or the true actions)",
                  config=True, gpu=True)
    run_args(sub, policy_methods, required=False)
    sub.add_argument("--lam", help="the LAM run's folder (default: under --root)")
    sub.add_argument("--out", help="folder to write (default: runs/lam/.../bc or runs/bc-actions/s{seed} under --root)")
    sub = command(policy, "decoder", cmd_policy_decoder, "fit the latent -> action decoder on a labelled budget", config=True)
    run_args(sub, tuple(METHODS), required=True)
    sub.add_argument("--budget", type=int, help="labelled trajectories per task")
    sub.add_argument("--labelled", nargs="+", metavar="H5", help="labelled subsets, one per task (default: under --root)")
    sub.add_argument("--policy", help="the latent policy's folder (default: under --root)")
    sub.add_argument("--out", help="folder to write (default: runs/lam/.../decoder/n{budget} under --root)")
    sub = command(policy, "evaluate", cmd_policy_evaluate, "roll the (decoded) policy out in the online env", config=True)
    run_args(sub, policy_methods, required=False)
    sub.add_argument("--budget", type=int, help="labelled trajectories per task of the decoder")
    sub.add_argument("--backgrounds", nargs="+", choices=("train", "eval"),
                     help="background videos, each evaluated apart: those of the training data, unseen ones "
                          "(default: the config's evaluation.backgrounds)")
    sub.add_argument("--policy", help="the policy's folder (default: under --root)")
    sub.add_argument("--decoder", help="the decoder's folder (default: under --root)")
    sub.add_argument("--out", nargs="+", help="files to write, one per background (default: eval-{background}.json "
                                              "in the decoder's or policy's folder)")
    sub.add_argument("--workers", type=int, help="parallel env processes (default: evaluation.workers)")
    sub = command(policy, "random", cmd_policy_random, "the floor: uniform random actions under the evaluation protocol",
                  config=True)
    sub.add_argument("--backgrounds", nargs="+", choices=("train", "eval"),
                     help="background videos, each evaluated apart (default: the config's evaluation.backgrounds)")
    sub.add_argument("--root", default=".", help="folder of the default inputs and outputs")
    sub.add_argument("--rollouts", nargs="+", metavar="H5", help="train rollout files, one per task (default: under --root)")
    sub.add_argument("--out", nargs="+", help="files to write, one per background "
                                              "(default: runs/random-actions/eval-{background}.json under --root)")
    sub.add_argument("--workers", type=int, help="parallel env processes (default: evaluation.workers)")

    sub = stages.add_parser("plan", help="what each figure needs and costs, before launching (estimates marked)",
                            description="Work per figure (target jobs, frames, LAM runs, BC policies, decoders, "
                                        "evaluation episodes) counted from the config, and estimated hours.")
    sub.set_defaults(handler=cmd_plan, gpu=False)
    _add_config_args(sub)
    sub.add_argument("figures", nargs="*", help="figures to plan (default: every figure of the config)")
    sub.add_argument("--csv", help="also write the table here")
    sub.add_argument("--measured", metavar="DIR", help="GPU unit costs from bench/gpu.sh's results in DIR "
                                                       "(default: the assumptions printed)")
    sub.add_argument("--partitions", metavar="FILE", help="also say where each rule's jobs go on a cluster with "
                                                          "these partitions (profiles/slurm's partitions file)")
    sub.add_argument("--profile", default="profiles/slurm", metavar="DIR",
                     help="the Snakemake profile whose threads and resources the jobs ask (default: profiles/slurm)")

    slurm = stages.add_parser("slurm", help="the SLURM cluster profiles/slurm runs on").add_subparsers(
        dest="command", required=True)
    sub = slurm.add_parser("partitions", help="write a partitions file stating this cluster's limits (sinfo)",
                           description="The partitions file of profiles/slurm, from `sinfo`: each partition with "
                                       "the CPUs, memory, time limit and GPUs of its largest node.")
    sub.set_defaults(handler=cmd_slurm_partitions, gpu=False)
    sub.add_argument("--out", help="file to write (default: print it)")

    figures = stages.add_parser("figures", help="figures and the tables behind them").add_subparsers(dest="command", required=True)

    def figure_command(name: str, handler: Callable, help: str, outputs: dict[str, str], named: str = "") -> None:
        """A figure command: `--root` and an option per output file (defaults: ``outputs``, in
        which `{name}` is the figure's name when the command takes one of ``named``)."""
        sub = command(figures, name, handler, help, config=True)
        if named:
            sub.add_argument("name", help=f"the figure's name in {named}")
        sub.add_argument("--root", default=".", help="folder holding runs/ (and figures/)")
        for flag, default in outputs.items():
            if named:
                sub.add_argument(f"--{flag}", help=f"default: {default}")
            else:
                sub.add_argument(f"--{flag}", default=default)

    figure_command("fig1", cmd_figures_fig1, "Figure 1: success rate, IQM with stratified-bootstrap confidence intervals",
                   {"pdf": "figures/fig1.pdf", "csv": "figures/fig1.csv"})
    figure_command("sweep", cmd_figures_sweep,
                   "a sweep figure of figures.sweeps: probe and success against the swept setting",
                   {"pdf": "figures/{name}.pdf", "csv": "figures/{name}.csv"}, named="figures.sweeps")
    figure_command("comparison", cmd_figures_comparison,
                   "a comparison figure of figures.comparisons: probes and success of targets side by side",
                   {"pdf": "figures/{name}.pdf", "csv": "figures/{name}.csv", "tex": "tables/{name}.tex"},
                   named="figures.comparisons")
    figure_command("summary", cmd_figures_summary,
                   "the paper's claims beside what this run measured (Figure 1, figures.summary's comparisons)",
                   {"csv": "tables/summary.csv", "txt": "tables/summary.txt"})
    figure_command("screening-transfer", cmd_figures_screening_transfer,
                   "rank correlation of a comparison's bars between screening runs and runs on all the data",
                   {"pdf": "figures/screening_transfer.pdf", "csv": "figures/screening_transfer.csv"})
    figure_command("lam-probes", cmd_figures_lam_probes,
                   "held-out probes of every LAM run of lam.runs: mean and t-interval over seeds",
                   {"pdf": "figures/lam_probes.pdf", "csv": "tables/lam_probes.csv"})
    return parser


def _warn_if_torch_cannot_use(device: str | None) -> None:
    """A job given a GPU (by the pool or the scheduler) under a CPU build of torch would quietly
    run on the CPU: say so in its log."""
    import torch

    if device and device.strip() not in ("-1", "NoDevFiles") and torch.version.cuda is None:
        print(f"promptlam: warning: this job was given GPU {device}, but torch {torch.__version__} is a CPU build "
              "and runs it on the CPU; GPU machines install the GPU lock (make setup VARIANT=cuda)", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.gpu is True or (callable(args.gpu) and args.gpu(args)):
            from promptlam.devices import claim_gpu

            claim_gpu()  # one GPU of the machine's pool for this process, before CUDA starts
            # the pool's device, or the scheduler's: both are in CUDA_VISIBLE_DEVICES now
            _warn_if_torch_cannot_use(os.environ.get("CUDA_VISIBLE_DEVICES"))
        if args.stage != "config" and "config_json" in vars(args) and _config(args).torch_threads is not None:
            import torch

            torch.set_num_threads(_config(args).torch_threads)  # config key torch_threads
        args.handler(args)
    except UserError as exc:
        print(f"promptlam: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
