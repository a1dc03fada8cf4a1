"""Metric weight registry: lookup directory, hashes, messages."""

from __future__ import annotations

import hashlib
import re

import pytest

from faceprior.checkpoints import REGISTRY, WEIGHTS
from faceprior.metrics.weights import (
    METRIC_WEIGHTS,
    MetricWeights,
    MissingWeightsError,
    get_metric_weights,
    metric_weights_dir,
    resolve_metric_weights,
)


def test_registry_entries_are_complete():
    for name, spec in METRIC_WEIGHTS.items():
        assert spec.name == name and spec.filename
        assert spec.url or spec.page, name
        if spec.sha256:
            assert re.fullmatch(r"[0-9a-f]{64}", spec.sha256)
        if spec.sha256_prefix:
            assert spec.sha256_prefix in spec.filename
            assert spec.sha256 is None or spec.sha256.startswith(spec.sha256_prefix)
    with pytest.raises(KeyError, match="known"):
        get_metric_weights("nope")


def test_directory_from_argument_or_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEPRIOR_WEIGHTS_DIR", str(tmp_path / "env"))
    assert metric_weights_dir() == tmp_path / "env"
    assert metric_weights_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("FACEPRIOR_WEIGHTS_DIR")
    assert str(metric_weights_dir()).endswith(".cache/faceprior/weights")


def test_missing_file_message_without_direct_url(tmp_path):
    with pytest.raises(MissingWeightsError) as info:
        resolve_metric_weights("inception_FFHQ_512", tmp_path)
    message = str(info.value)
    assert "inception_FFHQ_512-f7b384ab.pth" in message and str(tmp_path) in message
    assert "drive.google.com" in message


def test_hash_checks(tmp_path, monkeypatch):
    data = b"weights"
    digest = hashlib.sha256(data).hexdigest()
    good = MetricWeights("good", "good.pth", "https://example.invalid/good.pth", sha256=digest)
    prefixed = MetricWeights("pre", f"pre-{digest[:8]}.pth", None, sha256_prefix=digest[:8])
    wrong = MetricWeights("bad", "bad.pth", None, sha256="0" * 64, page="somewhere")
    unknown = MetricWeights("unk", "unk.pth", None, page="somewhere")
    for spec in (good, prefixed, wrong, unknown):
        monkeypatch.setitem(METRIC_WEIGHTS, spec.name, spec)
        (tmp_path / spec.filename).write_bytes(data)
    assert resolve_metric_weights("good", tmp_path).verified is True
    assert resolve_metric_weights("pre", tmp_path).verified is True
    assert resolve_metric_weights("unk", tmp_path).verified is None
    with pytest.warns(UserWarning, match="not comparable"):
        resolved = resolve_metric_weights("bad", tmp_path)
    assert resolved.verified is False and resolved.describe()["sha256"] == digest


def test_metric_entries_come_from_the_one_registry():
    metric_entries = {s.name: s for s in WEIGHTS.values() if "metric" in s.purposes}
    assert metric_entries == METRIC_WEIGHTS
    assert METRIC_WEIGHTS["arcface_resnet18"] is REGISTRY["arcface_resnet18"]
    assert "GFPGANv1.4" not in METRIC_WEIGHTS and "vgg19" not in METRIC_WEIGHTS


def test_missing_file_message_with_direct_url(tmp_path):
    with pytest.raises(MissingWeightsError) as info:
        resolve_metric_weights("alignment_WFLW_4HG", tmp_path)
    message = str(info.value)
    assert "alignment_WFLW_4HG.pth" in message and str(tmp_path) in message
    assert "https://github.com/xinntao/facexlib/releases/download/v0.1.0/" in message
    assert "faceprior-weights download alignment_WFLW_4HG" in message


def test_bundled_metric_file_is_read_from_the_package(tmp_path):
    resolved = resolve_metric_weights("niqe_pris_params", tmp_path)
    assert resolved.verified is True and resolved.path.name == "niqe_pris_params.npz"
    assert resolved.path.parent.name == "data" and resolved.path.is_file()
