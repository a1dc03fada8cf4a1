"""Preflight: check everything a composed config will read, once, before anything is built.

``faceprior-train`` and ``faceprior-eval`` (and every stage of a multi-stage experiment, all
stages before the first one starts) walk the config for the data folders, component files,
benchmark folders, every weights file of every network, loss and metric, ``ckpt_path``, the
values whose types or ranges are wrong, and the global batch against the devices. **All** problems
are reported together, each with the config key that names it, what was expected and the command
or URL that provides it. Nothing is instantiated: the check costs imports, not networks.

``preflight`` in ``train.yaml`` / ``eval.yaml``:

* ``true`` (default): a run with problems stops with the report (exit status 1) before anything
  is built and before DDP processes start;
* ``only``: print the report (problems, notes, and the files and folders found) and exit,
  0 when ready and 1 otherwise;
* ``false``: skip it (errors then surface where they occur).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from omegaconf import DictConfig

from faceprior.preflight.files import (
    benchmark_needs,
    checkpoint_need,
    data_needs,
    weights_footer,
    weights_needs,
)
from faceprior.preflight.report import (
    MissingFilesError,
    Need,
    PreflightError,
    PreflightReport,
    error_for,
)
from faceprior.preflight.values import batch_need, data_range_needs, type_needs
from faceprior.utils.runtime import experiment_name

__all__ = [
    "MODES",
    "MissingFilesError",
    "Need",
    "PreflightError",
    "PreflightReport",
    "check_config",
    "finish",
    "preflight_mode",
    "run_preflight",
    "title",
]

log = logging.getLogger("faceprior")

#: the values of ``preflight``
MODES = (True, False, "only")


def preflight_mode(cfg: DictConfig) -> bool | str:
    """``cfg.preflight`` checked: ``True`` (default), ``False`` or ``"only"``."""
    value = cfg.get("preflight", True)
    if isinstance(value, str):
        value = {"true": True, "false": False, "only": "only"}.get(value.lower(), value)
    if value is True or value is False or value == "only":
        return bool(value) if isinstance(value, bool) else "only"
    raise ValueError(f"preflight must be true, false or only, got {value!r}")


def title(cfg: DictConfig, app: str) -> str:
    """``faceprior-train experiment=NAME`` (what the report is about)."""
    name = experiment_name(cfg)
    return f"{app} experiment={name}" if name else f"{app} (no experiment)"


def check_config(
    cfg: DictConfig, app: str = "faceprior-train", provided: Mapping[str, str] | None = None
) -> PreflightReport:
    """Every need of ``cfg``; ``provided`` maps keys filled by earlier stages to their source
    (``model.decoder_prior -> prior/generator_ema``), which are then not checked."""
    report = PreflightReport(title(cfg, app))
    training = app == "faceprior-train" and bool(cfg.get("train", True))
    testing = app != "faceprior-train" or bool(cfg.get("test", True))
    scratch = PreflightReport(report.title)
    data_needs(cfg, scratch, training)
    if testing:
        benchmark_needs(cfg, scratch)
    weights_needs(cfg, scratch)
    checkpoint_need(cfg, scratch)
    for need in [*type_needs(cfg), *data_range_needs(cfg)]:
        scratch.add(need)
    batch = batch_need(cfg)
    if batch is not None:
        scratch.add(batch)
    for need in scratch.needs:
        source = (provided or {}).get(need.key)
        if source is not None:
            report.add(Need(need.key, "note", f"written by stage {source} before this stage runs"))
        else:
            report.add(need)
    report.footer.append(weights_footer(cfg))
    return report


def finish(report: PreflightReport, mode: bool | str) -> PreflightReport | None:
    """Act on a report: print it (``only``, returned to the caller, who stops), raise its error
    (problems), or log that the run is ready."""
    if mode == "only":
        print(report.text(found=True))
        return report
    if not report.ok:
        raise error_for(report)
    for need in report.needs:
        if need.kind == "note":
            log.info("preflight: %s", need.line())
    log.info("preflight: %s", report.text().splitlines()[0].removeprefix("preflight: "))
    return None


def run_preflight(cfg: DictConfig, app: str = "faceprior-train") -> PreflightReport | None:
    """Check ``cfg`` as ``cfg.preflight`` asks; returns the report only for ``preflight=only``.

    Raises:
        PreflightError: the config has problems (:class:`MissingFilesError`: all are missing
            files or folders); the message is the whole report.
    """
    mode = preflight_mode(cfg)
    if mode is False:
        return None
    return finish(check_config(cfg, app), mode)
