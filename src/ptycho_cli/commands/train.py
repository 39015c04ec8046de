"""``ptycho train``: fit the PINN on a dataset and write a model bundle."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ptycho.config.train import ML_ESTIMATE_MAX_PHOTONS, TrainConfig
from ptycho_cli.defaults import default_of
from ptycho_cli.hookspecs import hookimpl
from ptycho_cli.options import ConfigFiles, Json, Quiet, SetItems, Verbose
from ptycho_cli.specs import CommandSpec

Opt = typer.Option


def train_command(
    ctx: typer.Context,
    dataset: Annotated[Path, typer.Argument(metavar="DATASET", help="Dataset (.h5, .npz or PtychoPINN .npz).", show_default=False)],
    out: Annotated[Path, Opt("--out", "-o", help="Model bundle directory.")],
    gridsize: Annotated[Optional[int], Opt("--gridsize", help="Group side g (default: the dataset's).")] = None,
    epochs: Annotated[Optional[int], Opt("--epochs", help="Total epochs (with --resume: up to this many).", show_default=default_of(TrainConfig, "epochs"))] = None,
    batch_size: Annotated[Optional[int], Opt("--batch-size", help="Groups per step.", show_default=default_of(TrainConfig, "batch_size"))] = None,
    loss: Annotated[Optional[str], Opt("--loss", help="nll (Poisson, on counts) or mae (on amplitudes).", show_default=default_of(TrainConfig, "loss"))] = None,
    learning_rate: Annotated[Optional[float], Opt("--learning-rate", "--lr", help="Adam learning rate.", show_default=default_of(TrainConfig, "learning_rate"))] = None,
    n_groups: Annotated[Optional[int], Opt("--n-groups", help="Groups to train on (default one per position).")] = None,
    neighbors: Annotated[Optional[int], Opt("--neighbors", help="Draw group members from the K nearest.")] = None,
    N: Annotated[Optional[int], Opt("--N", help="Expected pattern size (checked against the data).")] = None,
    n_filters_scale: Annotated[Optional[int], Opt("--n-filters-scale", help="Network width multiplier.", show_default=default_of(TrainConfig, "model.n_filters_scale"))] = None,
    estimate: Annotated[Optional[str], Opt("--estimate", help="Physics input: global (an estimate of the whole scan, "
                                                              f"default: rPIE, or ML below {ML_ESTIMATE_MAX_PHOTONS:g} photons per pattern; "
                                                              "model.estimate_engine), group (ePIE per group) or none.", show_default=False)] = None,
    strategy: Annotated[Optional[str], Opt("--strategy", help="default (one device), mirrored (all local devices) or "
                                                              "multiworker (a cluster; see --cluster).",
                                           show_default=default_of(TrainConfig, "strategy"))] = None,
    cluster: Annotated[Optional[str], Opt("--cluster", help="multiworker: the cluster from tf_config (the TF_CONFIG "
                                                            "variable, default) or slurm (the SLURM job step).",
                                          show_default=False)] = None,
    jit: Annotated[Optional[bool], Opt("--jit/--no-jit", help="XLA-compile the training step.", show_default=False)] = None,
    refine_probe: Annotated[Optional[bool], Opt("--refine-probe/--no-refine-probe", show_default=False,
                                                help="Refine the probe with the network (its own optimiser), after "
                                                     "--set probe_init_passes=K rPIE passes with probe update "
                                                     "\\[default: on when the dataset marks its probe as a guess].")] = None,
    probe: Annotated[Optional[Path], Opt("--probe", metavar="FILE", show_default=False,
                                         help="Start from this probe instead of the dataset's (a dataset, "
                                              "PtychoPINN NPZ, Ptychodus product or .probe.npz); the bundle keeps "
                                              "it, and infer uses it for the next scan.")] = None,
    refine_positions: Annotated[Optional[bool], Opt(
        "--refine-positions/--no-refine-positions", show_default=False,
        help="Refine the scan's positions before training: rPIE passes move each position by a bounded sub-pixel "
             "offset (mean shift removed; --set position_init_passes=40, position_max_shift_px=2; with "
             "--refine-probe one run refines both). Groups and the network's input use the refined positions; "
             "the bundle stores them (positions.npz) with refinement.png \\[default: off].")] = None,
    seed: Annotated[Optional[int], Opt("--seed", help="Seed for grouping, split, shuffling and weights.", show_default=default_of(TrainConfig, "seed"))] = None,
    resume: Annotated[bool, Opt("--resume", help="Continue the bundle in --out from its last epoch; its settings "
                                                 "are the defaults, flags override them (a new --lr replaces its rate).")] = False,
    force: Annotated[bool, Opt("--force", help="Replace the bundle (or other files) in --out; the old bundle stays "
                                               "whole until the first new checkpoint.")] = False,
    mask: Annotated[Optional[Path], Opt("--mask", help="Valid-pixel mask (True = measured; .npy, or .npz/.h5 key "
                                        "'mask') replacing the dataset's: masked pixels leave the loss. The bundle "
                                        "keeps the mask used; infer applies it to a scan without one.")] = None,
    config: ConfigFiles = None,
    set_: SetItems = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    as_json: Json = False,
) -> None:
    """Train the physics-informed network on DATASET (no ground truth needed).

    Writes the bundle (config.json, model.weights.h5, probe.npy, scale.json, history.json,
    manifest.json), loss.png and config.yaml into OUT. A checkpoint is written every epoch and
    replaces the previous one all or nothing (a kill leaves one or the other, whole). OUT must be
    empty unless --resume or --force. A non-finite loss restores the last good weights and halves
    the learning rate of the failed try.

    Examples:

      ptycho train data.h5 --out model/

      ptycho train data.h5 --out model/ --gridsize 2 --epochs 20 --loss nll

      ptycho train data.h5 --out model/ --epochs 30 --resume

      ptycho train data.h5 --out model/ --epochs 30 --resume --lr 3e-4

      ptycho train data.h5 --out model/ --force

      ptycho train measured.h5 --out model/ --refine-probe --probe guess.probe.npz

      ptycho train measured.h5 --out model/ --refine-probe --refine-positions

      ptycho train data.h5 --out model/ --estimate group --set model.epie_iterations=10

      srun ptycho train data.h5 --out model/ --strategy multiworker --cluster slurm

    With --strategy multiworker every worker runs this same command; --batch-size is the global
    batch (split over the workers) and only the chief (worker 0) writes OUT and shows progress.
    """
    from ptycho_cli.errors import guard
    from ptycho_cli.fields import COMMAND_FLAGS

    with guard(verbose, COMMAND_FLAGS["train"]):
        flags = {
            "model.gridsize": gridsize, "epochs": epochs, "batch_size": batch_size, "loss": loss,
            "learning_rate": learning_rate, "n_groups": n_groups, "neighbors": neighbors, "model.N": N,
            "model.n_filters_scale": n_filters_scale, "model.estimate": estimate, "strategy": strategy, "jit": jit,
            "cluster.resolver": cluster, "seed": seed, "mask": mask, "refine_probe": refine_probe,
            "refine_positions": refine_positions,
            "probe_file": None if probe is None else str(probe),
        }
        cfg = resolve_train_config(ctx, out, flags, config, set_, resume=resume, force=force)
        result = train_with_progress(ctx, cfg, dataset, out, resume=resume, force=force, quiet=quiet or as_json)
        print_train_summary(result, as_json=as_json, quiet=quiet)


def resolve_train_config(ctx: typer.Context, out: Path, flags: dict, files: Optional[list[Path]],
                         sets: Optional[list[str]], *, resume: bool, force: bool) -> TrainConfig:
    """The run's config: defaults (on ``--resume`` the bundle's settings in ``out``) < ``--config``
    files < ``--set`` items < ``flags``; ``--resume`` with ``--force`` is refused (exit code 2)."""
    from ptycho.errors import ConfigError
    from ptycho.workflows.train_bundle import stored_train_settings
    from ptycho_cli.config_io import resolve_config

    if resume and force:
        raise ConfigError("--resume and --force contradict each other: continue the bundle or replace it")
    base = stored_train_settings(out) if resume else None
    return resolve_config(TrainConfig, "train", files=files or (), sets=sets or (), flags=flags, base=base,
                          sections=ctx.obj.config_sections())


def train_with_progress(ctx: typer.Context, cfg: TrainConfig, dataset: Path, out: Path, *, resume: bool, force: bool,
                        quiet: bool) -> Any:
    """Run :func:`ptycho.workflows.train.train` with a progress bar over each epoch's steps, a line
    per preparation stage and per epoch (on the chief only, unless ``quiet``); returns its
    ``TrainResult``."""
    from ptycho.distribute.cluster import is_chief_process
    from ptycho.workflows.train import train
    from ptycho_cli.console import ProgressLog, progress_bar

    chief = cfg.strategy != "multiworker" or is_chief_process(cfg.cluster.resolver, os.environ)
    log = ProgressLog(quiet=quiet or not chief)
    with progress_bar("training", quiet=quiet or not chief, extra="loss {task.fields[loss]}", loss="-",
                      console=log.console) as update:
        def on_step(report) -> None:
            update(report.step, report.steps, description=f"epoch {report.epoch + 1}/{cfg.epochs}",
                   loss=f"{report.loss:.4g}")

        def on_epoch(epoch: int, history: dict) -> None:
            log.line(f"epoch {epoch}/{cfg.epochs}: loss {history['loss'][-1]:.6g}, "
                     f"val loss {history['val_loss'][-1]:.6g}, learning rate {history['learning_rate'][-1]:.3g}, "
                     f"{history['seconds'][-1]:.1f} s")

        return train(cfg, dataset, out, ctx.obj.components(), resume=resume, force=force, on_step=on_step,
                     on_stage=lambda text: log.line(f"preparing: {text}"), on_epoch=on_epoch)


def print_train_summary(result: Any, *, as_json: bool, quiet: bool) -> None:
    """The summary of a ``TrainResult``: the bundle, losses and throughput on the chief; on any
    other worker only its part."""
    from ptycho_cli.console import print_summary

    history = result.history
    if result.worker != 0:
        print_summary("trained (this worker's part)", {
            "worker": f"{result.worker} of {result.workers}", "bundle (written by worker 0)": str(result.out),
            "epochs": result.epochs, "seconds": result.seconds,
        }, as_json=as_json, quiet=quiet)
        return
    print_summary(
        "trained",
        {
            "bundle": str(result.out),
            "loss curve": str(result.out / "loss.png"),
            "epochs": result.epochs,
            "groups": result.n_groups,
            "first loss": history["loss"][0] if history["loss"] else float("nan"),
            "final loss": history["loss"][-1] if history["loss"] else float("nan"),
            "final val loss": history["val_loss"][-1] if history["val_loss"] else float("nan"),
            "stopped early": result.stopped_early,
            "NaN recoveries": result.nan_recoveries,
            "patterns/s": result.patterns_per_second,
            "seconds": result.seconds,
        },
        as_json=as_json,
        quiet=quiet,
    )


@hookimpl
def ptycho_commands():
    return [CommandSpec("train", train_command)]
