"""Checkpoint layouts, strict loading with readable errors, export round trips, registry."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from faceprior import nets
from faceprior.checkpoints import (
    LAYOUTS,
    REGISTRY,
    CheckpointError,
    ChecksumError,
    StateDictMismatchError,
    UnknownCheckpointError,
    export_checkpoint,
    extract_state_dict,
    get_spec,
    identify,
    load_state_dict_checked,
    load_state_dict_file,
    match_kwargs,
    read_checkpoint,
    sha256sum,
    verify_sha256,
    wrap_state_dict,
)


def test_extract_every_layout_and_module_prefix() -> None:
    sd = {"a.weight": torch.ones(2), "b.bias": torch.zeros(1)}
    for layout in LAYOUTS:
        wrapped = wrap_state_dict(sd, layout)
        got = extract_state_dict(wrapped)
        assert got.layout == layout and got.state_dict.keys() == sd.keys()
    ddp = {"g_ema": {f"module.{k}": v for k, v in sd.items()}, "g": {}, "d": {}}
    got = extract_state_dict(ddp)
    assert got.layout == "g_ema" and got.prefix_removed and list(got.state_dict) == list(sd)
    assert got.describe() == "g_ema (module. prefix removed)"


def test_extract_prefers_params_ema_and_honours_key() -> None:
    ema, raw = {"w": torch.ones(1)}, {"w": torch.zeros(1)}
    both = {"params": raw, "params_ema": ema}
    assert extract_state_dict(both).state_dict["w"].item() == 1.0
    assert extract_state_dict(both, key="params").state_dict["w"].item() == 0.0
    with pytest.raises(CheckpointError, match=r"key 'params_x' not found .* \['params', "):
        extract_state_dict(both, key="params_x")
    with pytest.raises(CheckpointError, match="no network state dict found"):
        extract_state_dict({"iter": 3, "optimizer": {}})


def test_read_checkpoint_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"missing\.pth"):
        read_checkpoint(tmp_path / "missing.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        read_checkpoint(bad)
    pickled = tmp_path / "pickled.pth"
    torch.save({"params": {"w": torch.ones(1)}, "meta": Path("x")}, pickled)
    with pytest.raises(CheckpointError, match="trusted=True"):
        read_checkpoint(pickled)
    assert extract_state_dict(read_checkpoint(pickled, trusted=True)).layout == "params"


@pytest.mark.parametrize(
    ("layout", "fixture"),
    [("params_ema", "small_clean"), ("params", "small_v1"), ("bare", "small_gpen"),
     ("g_ema", "small_gpen")],
)  # fmt: skip
def test_export_then_load_gives_identical_outputs(
    layout: str, fixture: str, tmp_path: Path, image: torch.Tensor, request: pytest.FixtureRequest
) -> None:
    model = request.getfixturevalue(fixture)
    path = export_checkpoint(model, tmp_path / "net.pth", layout)
    raw = torch.load(path, weights_only=True)
    assert (layout == "bare") == (set(raw) != {layout})
    extracted = load_state_dict_file(path)
    assert extracted.layout == layout
    assert list(extracted.state_dict) == list(model.state_dict())  # official key order kept

    torch.manual_seed(123)  # a differently initialised twin
    twin = type(model)(**_config_of(fixture)).eval()
    load_state_dict_checked(twin, extracted.state_dict)
    kwargs = {} if fixture == "small_gpen" else {"randomize_noise": False}
    with torch.no_grad():
        assert torch.equal(model(image, **kwargs)[0], twin(image, **kwargs)[0])


def _config_of(fixture: str) -> dict[str, object]:
    return {
        "small_clean": {"out_size": 32, "num_style_feat": 32, "channel_multiplier": 2,
                        "narrow": 0.0625},
        "small_v1": {"out_size": 32, "num_style_feat": 32, "channel_multiplier": 1,
                     "narrow": 0.0625},
        "small_gpen": {"size": 32, "style_dim": 32, "n_mlp": 8, "channel_multiplier": 2,
                       "narrow": 0.0625},
    }[fixture]  # fmt: skip


def test_mismatch_error_is_readable(small_clean: nets.GFPGANv1Clean) -> None:
    gpen_sd = nets.GPENGenerator(32, 32, 8, 2, narrow=0.0625).state_dict()
    with pytest.raises(StateDictMismatchError) as info:
        load_state_dict_checked(small_clean, gpen_sd, source="gpen.pth")
    lines = str(info.value).splitlines()
    n_missing, n_unexpected = len(small_clean.state_dict()), len(gpen_sd)
    assert lines[0] == "gpen.pth does not fit GFPGANv1Clean:"
    assert lines[1].startswith(
        f"{n_missing} missing key(s) (in the network, not in the file): conv_body_first.weight, "
    )
    assert lines[1].endswith(f", ... (+{n_missing - 5} more)")
    assert lines[2].startswith(
        f"{n_unexpected} unexpected key(s) (in the file, not in the network): generator.style.1."
    )
    assert len(lines) == 3  # no shape mismatches, no registry hint for a 32 px GPEN
    assert info.value.missing[0] == "conv_body_first.weight"
    assert len(info.value.unexpected) == n_unexpected


def test_shape_mismatch_and_registry_hint() -> None:
    component = nets.FacialComponentDiscriminator().state_dict()
    target = nets.FacialComponentDiscriminator()
    broken = dict(component)
    broken["conv1.0.weight"] = torch.zeros(32, 3, 3, 3)
    with pytest.raises(StateDictMismatchError) as info:
        load_state_dict_checked(target, broken)
    text = str(info.value)
    assert (
        "1 shape mismatch(es): conv1.0.weight: file [32, 3, 3, 3] vs network [64, 3, 3, 3]" in text
    )
    assert "missing" not in text

    with pytest.raises(StateDictMismatchError) as info:
        load_state_dict_checked(nets.StyleGAN2Discriminator(32, narrow=0.0625), component)
    hint = "Hint: the file fits the registered architecture of 'GFPGANv1_net_d_left_eye'"
    assert hint in str(info.value)


def test_non_strict_loading_still_rejects_shape_mismatches() -> None:
    target = nets.FacialComponentDiscriminator()
    partial = {k: v for k, v in target.state_dict().items() if not k.startswith("final_conv")}
    load_state_dict_checked(target, partial, strict=False)
    partial["conv1.0.weight"] = torch.zeros(1)
    with pytest.raises(StateDictMismatchError, match="shape mismatch"):
        load_state_dict_checked(target, partial, strict=False)


def test_registry_lookup_and_entries() -> None:
    assert get_spec("gfpganv1.4.PTH".replace(".PTH", ".pth")).name == "GFPGANv1.4"
    assert get_spec("GPEN-BFR-512").layout == "bare"
    with pytest.raises(UnknownCheckpointError, match="registered names: GFPGANv1, "):
        get_spec("GFPGANv9")
    for spec in REGISTRY.values():
        assert spec.filename.endswith(".pth")
        assert spec.url is None or spec.url.startswith("https://")
        assert spec.url or spec.page, spec.name
        assert spec.sha256 is None or len(spec.sha256) == 64
        with torch.device("meta"):
            spec.build()
    required = {"GFPGANv1", "GFPGANCleanv1-NoCE-C2", "GFPGANv1.3", "GFPGANv1.4", "GPEN-BFR-256",
                "GPEN-BFR-512", "StyleGAN2_512_Cmul1_FFHQ_B12G4_scratch_800k",
                "arcface_resnet18", "model_ir_se50"}  # fmt: skip
    assert required <= set(REGISTRY)


def test_identify_and_alternative_configs() -> None:
    with torch.device("meta"):
        clean = nets.GFPGANv1Clean().state_dict()
        d256_cm2 = nets.GPENDiscriminator(256, channel_multiplier=2).state_dict()
    names = {spec.name for spec, _ in identify(clean)}
    assert names == {"GFPGANCleanv1-NoCE-C2", "GFPGANv1.3", "GFPGANv1.4"}
    spec = get_spec("GPEN-BFR-256-D")
    assert match_kwargs(spec, d256_cm2) == {"size": 256, "channel_multiplier": 2, "narrow": 1}


def test_sha256_verification(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"faceprior")
    digest = sha256sum(path)
    assert verify_sha256(path, digest.upper()) == digest
    with pytest.raises(ChecksumError, match=f"expected {'0' * 64}, got {digest}"):
        verify_sha256(path, "0" * 64)
