"""Reading, checking, loading and writing checkpoint files.

All loading goes through :func:`load_state_dict_checked`, which compares keys and shapes first
and raises :class:`StateDictMismatchError` with a readable summary instead of PyTorch's wall of
text. Files are read with ``torch.load(..., weights_only=True)`` unless the caller explicitly
trusts them.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from faceprior.checkpoints.errors import CheckpointError, ChecksumError, StateDictMismatchError
from faceprior.checkpoints.layouts import ExtractedStateDict, extract_state_dict, wrap_state_dict

Shape = tuple[int, ...]


@dataclass
class StateDictDiff:
    """Differences between the state dict a network expects and the one offered."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, Shape, Shape]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when keys and shapes match exactly."""
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self, max_items: int = 5) -> str:
        """Multi-line summary listing the first ``max_items`` of each kind, with counts."""

        def more(n: int) -> str:
            return f", ... (+{n - max_items} more)" if n > max_items else ""

        lines = []
        if self.missing:
            n = len(self.missing)
            shown = ", ".join(self.missing[:max_items])
            lines.append(f"{n} missing key(s) (in the network, not in the file): {shown}{more(n)}")
        if self.unexpected:
            n = len(self.unexpected)
            shown = ", ".join(self.unexpected[:max_items])
            lines.append(
                f"{n} unexpected key(s) (in the file, not in the network): {shown}{more(n)}"
            )
        if self.mismatched:
            n = len(self.mismatched)
            shown = "; ".join(
                f"{k}: file {list(got)} vs network {list(want)}"
                for k, got, want in self.mismatched[:max_items]
            )
            lines.append(f"{n} shape mismatch(es): {shown}{more(n)}")
        return "\n".join(lines) if lines else "keys and shapes match"


def _shape(value: Tensor | Shape) -> Shape:
    return tuple(value.shape) if isinstance(value, Tensor) else tuple(value)


def diff_state_dict(
    expected: Mapping[str, Tensor | Shape], actual: Mapping[str, Tensor | Shape]
) -> StateDictDiff:
    """Compare key sets and shapes (``expected`` = the network, ``actual`` = the file)."""
    diff = StateDictDiff()
    diff.missing = [k for k in expected if k not in actual]
    diff.unexpected = [k for k in actual if k not in expected]
    for k, want in expected.items():
        if k in actual and _shape(actual[k]) != _shape(want):
            diff.mismatched.append((k, _shape(actual[k]), _shape(want)))
    return diff


def _hint(state_dict: Mapping[str, Tensor]) -> str:
    """Name the registry entries whose architecture the offered state dict fits, if any."""
    from faceprior.checkpoints.registry import identify

    matches = identify(state_dict)
    if not matches:
        return ""
    names = ", ".join(f"'{spec.name}' = {spec.signature(kwargs)}" for spec, kwargs in matches)
    return f"\nHint: the file fits the registered architecture of {names}."


def load_state_dict_checked(
    module: nn.Module,
    state_dict: Mapping[str, Tensor],
    strict: bool = True,
    source: str = "state dict",
) -> None:
    """``module.load_state_dict`` with a readable error on any key or shape mismatch.

    Shape mismatches always raise (PyTorch cannot load them); missing/unexpected keys raise only
    with ``strict``.
    """
    diff = diff_state_dict(module.state_dict(), state_dict)
    if diff.mismatched or (strict and not diff.ok):
        message = (
            f"{source} does not fit {type(module).__name__}:\n{diff.summary()}{_hint(state_dict)}"
        )
        raise StateDictMismatchError(message, diff.missing, diff.unexpected, diff.mismatched)
    module.load_state_dict(state_dict, strict=strict)


def read_checkpoint(path: str | Path, trusted: bool = False) -> Any:
    """``torch.load`` a file on the CPU; only tensors and plain containers unless ``trusted``."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=not trusted)
    except pickle.UnpicklingError as exc:
        if "global" not in str(exc):  # not a disallowed class: the bytes are not a checkpoint
            raise CheckpointError(f"{path} is not a readable PyTorch checkpoint") from exc
        raise CheckpointError(
            f"{path} contains Python objects beyond tensors and cannot be read safely. If you "
            "trust its origin, read it with trusted=True (CLI: --trusted)."
        ) from exc
    except (RuntimeError, EOFError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint: {exc}") from exc
    except (KeyError, IndexError, TypeError, AttributeError) as exc:  # the unpickler choked
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint (torch.load: {type(exc).__name__} {exc})"
        ) from exc


def load_state_dict_file(
    path: str | Path, key: str | None = None, trusted: bool = False
) -> ExtractedStateDict:
    """Read a checkpoint in any supported layout and return its network state dict."""
    return extract_state_dict(read_checkpoint(path, trusted), key)


def to_cpu_state_dict(source: nn.Module | Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Detached, contiguous CPU copies of a module's (or a mapping's) tensors."""
    sd = source.state_dict() if isinstance(source, nn.Module) else source
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in sd.items()}


def save_torch_file(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to ``path`` atomically (whole new file or the old one; parents created)."""
    # imported here: the atomic module pulls in lightning_fabric (and torchvision), which the
    # network code that imports this module must not load
    from faceprior.checkpoints.atomic import atomic_write

    return atomic_write(Path(path).expanduser(), lambda fh: torch.save(obj, fh))


def export_checkpoint(
    source: nn.Module | Mapping[str, Tensor], path: str | Path, layout: str = "params_ema"
) -> Path:
    """Save a network (or state dict) in an official layout; returns the written path.

    Use ``params_ema`` for GFP-GAN / StyleGAN2-prior style files, ``bare`` for GPEN-BFR / ArcFace
    style files, ``g_ema`` for rosinality/GPEN training-style files.
    """
    return save_torch_file(wrap_state_dict(to_cpu_state_dict(source), layout), path)


def convert_checkpoint(
    src: str | Path,
    dst: str | Path,
    layout: str,
    key: str | None = None,
    trusted: bool = False,
) -> ExtractedStateDict:
    """Rewrite a checkpoint's network state dict in another layout; returns what was read."""
    extracted = load_state_dict_file(src, key=key, trusted=trusted)
    export_checkpoint(extracted.state_dict, dst, layout)
    return extracted


#: Where the trained and the averaged network live in our LightningModules' state dicts.
TRAINED_PREFIXES = ("net_g", "net")
EMA_PREFIX = "ema.shadow"
DISCRIMINATOR_PREFIX = "net_d"
#: ``faceprior-weights export --layout``: GFP-GAN's params/params_ema pair, a bare state dict of the
#: EMA generator (GPEN-BFR-*.pth), or GPEN train_simple's ``--pretrain`` file
EXPORT_LAYOUTS = ("gfpgan", "bare", "gpen_train")
EXPORT_PARTS = ("generator", "discriminator")


def save_generator_pair(
    params: nn.Module | Mapping[str, Tensor],
    params_ema: nn.Module | Mapping[str, Tensor],
    path: str | Path,
) -> Path:
    """Save GFP-GAN's generator file ``{params, params_ema}`` (trained and averaged weights)."""
    pair = {"params": to_cpu_state_dict(params), "params_ema": to_cpu_state_dict(params_ema)}
    return save_torch_file(pair, path)


def sub_state_dict(state_dict: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """The entries under ``prefix.`` with the prefix removed (e.g. ``net_g_ema`` of a module)."""
    head = prefix + "."
    return {k[len(head) :]: v for k, v in state_dict.items() if k.startswith(head)}


def generator_state_dict(state_dict: Mapping[str, Tensor]) -> tuple[str, dict[str, Tensor]] | None:
    """``(prefix, weights)`` of the generator in a faceprior module's state dict: the EMA copy
    (``ema.shadow``) when the run kept one, else the trained network; ``None`` when neither."""
    for prefix in (EMA_PREFIX, *TRAINED_PREFIXES):
        if weights := sub_state_dict(state_dict, prefix):
            return prefix, weights
    return None


def lightning_state_dict(
    path: str | Path, trusted: bool = False
) -> tuple[Any, Mapping[str, Tensor]]:
    """The checkpoint object and its ``state_dict`` (a :class:`CheckpointError` if it has none)."""
    ckpt = read_checkpoint(path, trusted)
    state = ckpt.get("state_dict") if isinstance(ckpt, Mapping) else None
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path} is not a Lightning checkpoint (no 'state_dict' entry)")
    return ckpt, state


def _trained_generator(src: str | Path, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    for prefix in TRAINED_PREFIXES:
        if params := sub_state_dict(state, prefix):
            return params
    heads = sorted({k.split(".", 1)[0] for k in state})
    raise CheckpointError(
        f"{src}: no generator weights under {TRAINED_PREFIXES} (top-level modules: {heads})"
    )


def export_training_checkpoint(
    src: str | Path,
    dst: str | Path,
    trusted: bool = False,
    layout: str = "gfpgan",
    part: str = "generator",
) -> tuple[Path, dict[str, int]]:
    """Write a network of a faceprior training checkpoint in an official layout.

    ``part='generator'``, ``layout='gfpgan'``: ``params`` (trained weights) and ``params_ema``
    (the EMA copy, or the trained weights again when the run had no EMA), what GFP-GAN's inference
    and ``decoder_load_path`` read (a StyleGAN2 prior run exports its generator this way).
    ``layout='bare'``: the EMA generator's state dict itself (GPEN-BFR-512.pth style).
    ``layout='gpen_train'``: GPEN ``train_simple.py``'s ``--pretrain`` file ``{g, d, g_ema,
    g_optim, d_optim}`` (Adam states of the two optimisers, in GPEN's parameter order).
    ``part='discriminator'``: the discriminator as a bare state dict (GPEN-BFR-512-D.pth style).
    Keys are the official names. Returns the path and the tensor count of each entry.
    """
    if layout not in EXPORT_LAYOUTS:
        raise ValueError(f"export layout must be one of {EXPORT_LAYOUTS}, got {layout!r}")
    if part not in EXPORT_PARTS:
        raise ValueError(f"export part must be one of {EXPORT_PARTS}, got {part!r}")
    ckpt, state = lightning_state_dict(src, trusted)
    net_d = sub_state_dict(state, DISCRIMINATOR_PREFIX)
    out: dict[str, Any]
    if part == "discriminator":
        if not net_d:
            raise CheckpointError(f"{src}: no discriminator weights under {DISCRIMINATOR_PREFIX!r}")
        out = to_cpu_state_dict(net_d)
        counts = {"discriminator": len(net_d)}
    else:
        params = _trained_generator(src, state)
        params_ema = sub_state_dict(state, EMA_PREFIX) or params
        if layout == "gfpgan":
            counts = {"params": len(params), "params_ema": len(params_ema)}
            return save_generator_pair(params, params_ema, dst), counts
        elif layout == "bare":
            out = to_cpu_state_dict(params_ema)
            counts = {"bare": len(params_ema)}
        else:
            optim = ckpt.get("optimizer_states") or []
            if not net_d or len(optim) < 2:
                raise CheckpointError(
                    f"{src}: the gpen_train layout needs a GAN checkpoint with a discriminator and "
                    f"two optimiser states (found {len(optim)})"
                )
            out = {
                "g": to_cpu_state_dict(params),
                "d": to_cpu_state_dict(net_d),
                "g_ema": to_cpu_state_dict(params_ema),
                "g_optim": optim[0],
                "d_optim": optim[1],
            }
            counts = {"g": len(params), "d": len(net_d), "g_ema": len(params_ema)}
    return save_torch_file(out, dst), counts


def sha256sum(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: str | Path, expected: str) -> str:
    """Return the file's SHA-256; raise :class:`ChecksumError` if it differs from ``expected``."""
    actual = sha256sum(path)
    if actual.lower() != expected.lower():
        raise ChecksumError(f"SHA-256 mismatch for {path}: expected {expected}, got {actual}")
    return actual


def load_file_into(module: nn.Module, path: str | Path, source: str) -> None:
    """Load a checkpoint file in any supported layout into ``module`` (strict keys and shapes).

    ``source`` names the file's origin (e.g. the config key) in mismatch errors.
    """
    extracted = load_state_dict_file(path)
    load_state_dict_checked(module, extracted.state_dict, strict=True, source=source)


def required_file(
    path: str | Path,
    key: str,
    label: str = "",
    expected: str | None = None,
    weights: str | None = None,
) -> Path:
    """``path`` as an existing file, else a ``FileNotFoundError`` naming the config ``key``.

    The message says what was expected and where to get it: the URL and file name of the
    registry entry ``weights`` when given, otherwise a pointer to ``faceprior-weights list``.
    """
    file = Path(path).expanduser()
    if file.is_file():
        return file
    if weights is not None:
        from faceprior.checkpoints.registry import get_weights

        entry = get_weights(weights)
        where = f"download {entry.url or entry.page} ({entry.filename}) and point {key} at it"
    else:
        where = "`faceprior-weights list` shows where to get it"
    what = f" (expected {expected})" if expected else ""
    prefix = f"{label} " if label else ""
    raise FileNotFoundError(f"{key}: {prefix}'{file}' does not exist{what}; {where}")


def load_pretrained_decoder(
    decoder: nn.Module,
    path: str | Path,
    key: str = "model.decoder_prior",
    expected: str | None = None,
) -> None:
    """Load a StyleGAN2 prior into a decoder (GFP-GAN's ``decoder_load_path``, GPEN's stage 2).

    The official GFP-GAN code reads ``['params_ema']``; other layouts are accepted as well. Keys
    and shapes must match exactly. ``key`` names the config entry and ``expected`` the kind of
    file in errors.
    """
    expected = expected or (
        "a StyleGAN2 prior in the official params_ema layout, for GFPGANv1 "
        "StyleGAN2_512_Cmul1_FFHQ_B12G4_scratch_800k.pth from the GFP-GAN v0.1.0 release"
    )
    file = required_file(path, key, expected=expected)
    load_file_into(decoder, file, f"{key} {file}")


def load_generator_weights(
    net: nn.Module,
    path: str | Path,
    key: str = "model.init_weights",
    expected: str | None = None,
) -> None:
    """Load a whole official-layout network file strictly (``params_ema`` preferred)."""
    expected = expected or "an official generator file such as GFPGANv1.4.pth or GPEN-BFR-512.pth"
    file = required_file(path, key, expected=expected)
    load_file_into(net, file, f"{key} {file}")


def load_vgg19_weights(
    extractor: nn.Module,
    path: str | Path,
    key: str = "model.generator_losses.perceptual.weights_path",
) -> None:
    """Read torchvision's ImageNet VGG19 file and load it into a ``VGG19FeatureExtractor``."""
    from faceprior.nets.vgg import VGG19FeatureExtractor

    file = required_file(path, key, label="VGG19 weights", weights="vgg19")

    if not isinstance(extractor, VGG19FeatureExtractor):
        raise TypeError(f"expected a VGG19FeatureExtractor, got {type(extractor).__name__}")
    trunk = extractor.trunk_state(load_state_dict_file(file).state_dict)
    load_state_dict_checked(extractor.features, trunk, strict=True, source=f"{key} {file} (VGG19)")
