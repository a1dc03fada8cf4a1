"""Multi-stage experiments: several training runs in order, each handing files to the next.

An experiment with a ``stages`` mapping (e.g. ``experiment=gpen_two_stage``) is not trained
itself; every stage is composed from ``train.yaml`` with its own ``overrides`` plus the overrides
given on the command line (except ``experiment=``), trained and tested in
``<output_dir>/<stage>``, and its networks are exported to ``<output_dir>/<stage>/exports``:

* ``generator_ema.pth`` — the generator in GFP-GAN's layout (``params_ema`` = EMA weights,
  ``params`` = trained weights): what ``model.decoder_prior`` / ``model.init_weights`` read;
* ``discriminator.pth`` — the discriminator as a bare state dict (``model.discriminator_prior``).

``stage_overrides`` (a list) are applied to every stage after its own overrides (e.g. the same
data, degradation, seed and test metrics for every method). A stage's ``inputs`` map a config key of that stage to ``<earlier stage>/<export>``::

    stages:
      prior: {overrides: [experiment=stylegan2_tiny]}
      gpen:
        overrides: [experiment=gpen_tiny]
        inputs: {model.decoder_prior: prior/generator_ema}

``stages.json`` in the experiment's output folder lists every stage's folder, exports and metrics.
Every selected stage is preflighted (:mod:`faceprior.preflight`) before the first one starts, in
one report; the files a stage reads from an earlier stage's exports are not checked.
With a top-level ``compare: {names: [...]}`` the stages' test results are then put side by side by
``faceprior-compare`` into ``<output_dir>/compare`` (e.g. ``experiment=gfpgan_vs_gpen_tiny``).

``stage=NAME`` (or a list) runs only those stages. Independent stages (no ``inputs``) can so be
run as the jobs of one multirun, in parallel with a launcher::

    faceprior-train -m experiment=gfpgan_vs_gpen_tiny stage=unet,gfpgan,gpen hydra/launcher=local_parallel

and :class:`faceprior.stages_multirun.CompareAfterMultirun` (a Hydra callback the comparison
experiments declare) compares the jobs' stages into ``<sweep dir>/compare`` once all have ended.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn

from faceprior.checkpoints.io import export_checkpoint, save_generator_pair
from faceprior.preflight import (
    PreflightReport,
    check_config,
    finish,
    preflight_mode,
    title,
)

log = logging.getLogger("faceprior")

TrainFn = Callable[[DictConfig], tuple[dict[str, Any], dict[str, Any]]]
#: what every stage exports, by name
EXPORTS = ("generator_ema", "discriminator")


def parent_overrides(cfg: DictConfig) -> list[str]:
    """The command-line overrides of the multi-stage run that every stage inherits."""
    task = OmegaConf.select(cfg, "hydra.overrides.task", default=None)
    if task is None:
        try:
            from hydra.core.hydra_config import HydraConfig

            task = list(HydraConfig.get().overrides.task)
        except ValueError:  # not inside a Hydra app
            task = []
    keep = []
    for item in task:
        key = str(item).lstrip("+~").split("=", 1)[0]
        if key in ("experiment", "ckpt_path", "stage") or key.startswith(
            ("stages", "hydra", "paths")
        ):
            continue
        keep.append(str(item))
    return keep


def override_value(overrides: list[str], key: str) -> str | None:
    """The value the last ``key=...`` (or ``+key=``/``++key=``) of ``overrides`` sets."""
    value = None
    for item in overrides:
        name, sep, rest = str(item).lstrip("+").partition("=")
        if sep and name == key:
            value = rest if rest not in ("", "null") else None
    return value


def compose_stage(overrides: list[str], config_name: str = "train") -> DictConfig:
    """Compose ``config_name`` with ``overrides`` (inside a Hydra app or stand-alone)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        return compose(config_name, overrides=overrides)
    from faceprior.utils.config import CONFIG_DIR

    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name, overrides=overrides)


def export_stage(model: nn.Module, out_dir: Path) -> dict[str, str]:
    """Write the stage's final networks (see the module docstring); returns name -> path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    net_g = getattr(model, "net_g", None)
    if isinstance(net_g, nn.Module):
        ema = getattr(model, "eval_net", net_g)
        files["generator_ema"] = str(save_generator_pair(net_g, ema, out_dir / "generator_ema.pth"))
    net_d = getattr(model, "net_d", None)
    if isinstance(net_d, nn.Module):
        files["discriminator"] = str(
            export_checkpoint(net_d, out_dir / "discriminator.pth", "bare")
        )
    return files


def _stage_inputs(
    name: str, inputs: Mapping[str, str], exports: Mapping[str, Mapping[str, str]]
) -> list[str]:
    out = []
    for key, ref in inputs.items():
        stage, _, what = str(ref).partition("/")
        if stage not in exports:
            raise ValueError(
                f"stages.{name}.inputs.{key}={ref!r}: stage {stage!r} has not run before {name!r} "
                f"(stages so far: {list(exports)}; a stage that uses another's exports runs in the "
                "same process after it: select both with stage=[...] or drop stage=)"
            )
        if what not in exports[stage]:
            raise ValueError(
                f"stages.{name}.inputs.{key}={ref!r}: stage {stage!r} exported "
                f"{sorted(exports[stage])}, not {what!r}"
            )
        out.append(f"{key}={exports[stage][what]}")
    return out


def selected_stages(cfg: DictConfig) -> list[str]:
    """The stages to run: ``cfg.stage`` (a name or a list of names), else all, in config order."""
    names = [str(k) for k in cfg.stages]
    chosen = cfg.get("stage")
    if chosen is None:
        return names
    wanted = [str(chosen)] if isinstance(chosen, str | int) else [str(c) for c in chosen]
    unknown = [w for w in wanted if w not in names]
    if unknown:
        raise ValueError(f"stage={chosen}: no stage {unknown}; this experiment's stages: {names}")
    return [n for n in names if n in wanted]


#: one selected stage: name, its overrides (without inputs), its inputs (key -> "stage/export")
StagePlan = tuple[str, list[str], dict[str, str]]


def stage_plan(cfg: DictConfig) -> list[StagePlan]:
    """The selected stages of ``cfg.stages`` in order, with the overrides each is composed with."""
    stages = cfg.stages
    if not isinstance(stages, DictConfig) or not stages:
        raise ValueError("stages must be a mapping of stage name -> {overrides, inputs}")
    chosen = selected_stages(cfg)
    inherited = parent_overrides(cfg)
    shared = [str(o) for o in cfg.get("stage_overrides") or []]
    plan: list[StagePlan] = []
    for key, stage in stages.items():
        name = str(key)
        if name not in chosen:
            continue
        unknown = set(stage) - {"overrides", "inputs"}
        if unknown:
            raise ValueError(f"stages.{name}: unknown keys {sorted(unknown)} (overrides, inputs)")
        overrides = [*map(str, stage.get("overrides") or []), *shared, *inherited]
        inputs = {str(k): str(v) for k, v in (stage.get("inputs") or {}).items()}
        plan.append((name, overrides, inputs))
    return plan


def compose_in(cfg: DictConfig, name: str, overrides: list[str]) -> DictConfig:
    """One stage's config: composed from ``overrides``, writing to ``<output_dir>/<name>``."""
    stage_cfg = compose_stage(overrides)
    if stage_cfg.get("stages"):
        raise ValueError(f"stages.{name}: a stage cannot itself have stages")
    with open_dict(stage_cfg):
        stage_cfg.paths = OmegaConf.create(OmegaConf.to_container(cfg.paths, resolve=True))
        stage_cfg.paths.output_dir = str(Path(str(cfg.paths.output_dir)) / name)
        # the stage's own experiment, recorded in its checkpoints (not the multi-stage one)
        stage_cfg.experiment_name = override_value(overrides, "experiment")
    return stage_cfg


def preflight_stages(
    cfg: DictConfig, plan: list[StagePlan], app: str = "faceprior-train"
) -> PreflightReport | None:
    """Check every selected stage before the first starts, in one report (``cfg.preflight``);
    files a stage reads from an earlier stage's exports are not checked. Returns the report only
    for ``preflight=only``."""
    mode = preflight_mode(cfg)
    if mode is False:
        return None
    names = ", ".join(name for name, _, _ in plan)
    report = PreflightReport(f"{title(cfg, app)} (stages {names})")
    for name, overrides, inputs in plan:
        stage_cfg = compose_in(cfg, name, overrides)
        report.merge(check_config(stage_cfg, app, provided=inputs), scope=name)
    return finish(report, mode)


def run_stages(cfg: DictConfig, train_fn: TrainFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train the selected stages of ``cfg.stages`` in order (:func:`selected_stages`); returns the
    last stage's metrics and runs. Every stage is preflighted before the first one starts."""
    plan = stage_plan(cfg)
    only = preflight_stages(cfg, plan)
    if only is not None:
        return {}, {"preflight": only}
    root = Path(str(cfg.paths.output_dir))
    exports: dict[str, dict[str, str]] = {}
    summary: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    runs: dict[str, Any] = {}
    for name, planned, inputs in plan:
        overrides = [*planned, *_stage_inputs(name, inputs, exports)]
        log.info("stage %s: %s", name, " ".join(overrides))
        stage_cfg = compose_in(cfg, name, overrides)
        metrics, run = train_fn(stage_cfg)
        model = run.get("model")
        exports[name] = export_stage(model, root / name / "exports") if model else {}
        runs[name] = run
        summary[name] = {
            "output_dir": str(root / name),
            "overrides": overrides,
            "exports": exports[name],
            "metrics": {k: float(v) for k, v in metrics.items() if _is_number(v)},
        }
        root.mkdir(parents=True, exist_ok=True)
        (root / "stages.json").write_text(json.dumps(summary, indent=2))
    if cfg.get("compare") is not None and len(plan) == len(cfg.stages):
        summary["compare"] = compare_stages(root, list(summary), cfg.compare)
        (root / "stages.json").write_text(json.dumps(summary, indent=2))
    return metrics, {"stages": runs, **(runs[list(runs)[-1]] if runs else {})}


def compare_stages(root: Path, stages: list[str], settings: Any) -> dict[str, str]:
    """Compare the stages' test results (``faceprior-compare``) into ``root/compare``."""
    names = list(settings.get("names") or stages)
    if len(names) != len(stages):
        raise ValueError(f"compare.names has {len(names)} names for the stages {stages}")
    return compare_runs([root / s for s in stages], names, settings, root / "compare")


def compare_runs(
    runs: list[Path], names: list[str], settings: Any, out_dir: Path
) -> dict[str, str]:
    """Put the runs' test results side by side (``compare.metrics`` and ``compare.crops``)."""
    from faceprior.compare import compare, write_outputs

    metrics = settings.get("metrics")
    table = compare(runs, names=names, metrics=list(metrics) if metrics else None)
    files = write_outputs(table, out_dir, crops=int(settings.get("crops", 4)))
    log.info("comparison of %s: %s", ", ".join(names), files.get("md"))
    return {k: str(v) for k, v in files.items()}


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
