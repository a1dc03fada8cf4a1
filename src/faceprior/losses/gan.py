"""Adversarial criteria, the R1 penalty, and the generator-side GAN terms of GFP-GAN.

Generator terms here take a :class:`GeneratorContext` (the restored image, the ground truth, the
discriminators, the eye/mouth crops and the iteration) and return an already-weighted loss, so a
LightningModule can sum a config-defined mapping of them without knowing what each one needs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from faceprior.losses.perceptual import gram_matrix

CRITERIA = ("wgan_softplus", "vanilla", "hinge")


def gan_loss(
    logits: Tensor, target_is_real: bool, criterion: str, for_discriminator: bool
) -> Tensor:
    """Mean adversarial loss of ``logits`` against a real/fake target.

    ``wgan_softplus``: ``softplus(-x)`` for real, ``softplus(x)`` for fake (the logistic loss of
    StyleGAN2); ``vanilla``: binary cross-entropy with logits; ``hinge``: ``relu(1 ∓ x)`` for the
    discriminator and ``-x`` for the generator.
    """
    if criterion == "wgan_softplus":
        return F.softplus(-logits).mean() if target_is_real else F.softplus(logits).mean()
    if criterion == "vanilla":
        target = torch.ones_like(logits) if target_is_real else torch.zeros_like(logits)
        return F.binary_cross_entropy_with_logits(logits, target)
    if criterion == "hinge":
        if not for_discriminator:
            return -logits.mean()
        return F.relu(1 - logits).mean() if target_is_real else F.relu(1 + logits).mean()
    raise ValueError(f"GAN criterion must be one of {CRITERIA}, got {criterion!r}")


def check_criterion(name: str, value: str) -> str:
    if value not in CRITERIA:
        raise ValueError(f"{name} must be one of {CRITERIA}, got {value!r}")
    return value


def r1_penalty(real_logits: Tensor, real_images: Tensor) -> Tensor:
    """``mean_b Σ (∂ΣD(x)/∂x)²`` on real images (``real_images`` must require grad), in float32."""
    (grad,) = torch.autograd.grad(
        outputs=real_logits.float().sum(), inputs=real_images, create_graph=True
    )
    return grad.float().pow(2).reshape(grad.shape[0], -1).sum(1).mean()


class DiscriminatorLoss(nn.Module):
    """The discriminator objective of a GAN recipe: adversarial criteria plus lazy R1.

    ``forward(net_d, real, fake)`` scores the (detached) fake batch first, then the real batch, and
    returns ``(criterion_real(D(real)) + criterion_fake(D(fake)), logs)``. :meth:`r1` returns the
    lazy R1 term ``r1_weight / 2 · R1 · r1_interval`` on real images, computed in float32 outside
    autocast; a recipe adds it to the same backward (``r1_separate_step=False``, GFP-GAN) or runs
    it as its own optimiser step (``True``, StyleGAN2 / GPEN's trainer).

    Args:
        criterion: criterion for both real and fake logits (see :data:`CRITERIA`).
        real_criterion, fake_criterion: override one side (GFP-GAN's component discriminators
            score real crops with ``vanilla`` BCE and restored crops with ``wgan_softplus``).
        r1_weight: R1 weight γ (0 disables R1).
        r1_interval: lazy-regularisation interval k (R1 every k iterations; 0 disables R1). The
            optimiser of this discriminator is folded by ``k / (k + 1)``.
        r1_separate_step: run R1 in its own backward and optimiser step.
        allow_generator_mismatch: the generator's adversarial term may use a criterion that differs
            from this objective's (an official asymmetry must be stated in the preset).
    """

    def __init__(
        self,
        criterion: str = "wgan_softplus",
        real_criterion: str | None = None,
        fake_criterion: str | None = None,
        r1_weight: float = 10.0,
        r1_interval: int = 16,
        r1_separate_step: bool = False,
        allow_generator_mismatch: bool = False,
    ) -> None:
        super().__init__()
        self.real_criterion = check_criterion("real_criterion", real_criterion or criterion)
        self.fake_criterion = check_criterion("fake_criterion", fake_criterion or criterion)
        if r1_interval < 0 or r1_weight < 0:
            raise ValueError(
                f"r1_interval and r1_weight must be >= 0, got {r1_interval} and {r1_weight}"
            )
        self.r1_weight = float(r1_weight)
        self.r1_interval = int(r1_interval) if r1_weight > 0 else 0
        self.r1_separate_step = bool(r1_separate_step)
        self.allow_generator_mismatch = bool(allow_generator_mismatch)

    def check_generator(self, key: str, generator_criterion: str) -> None:
        """Raise unless ``generator_criterion`` matches both sides (or a mismatch is allowed)."""
        sides = {self.real_criterion, self.fake_criterion}
        if self.allow_generator_mismatch or sides == {generator_criterion}:
            return
        raise ValueError(
            f"{key}={generator_criterion!r} differs from the discriminator objective "
            f"(real {self.real_criterion!r}, fake {self.fake_criterion!r}); make them equal or set "
            "allow_generator_mismatch: true in the discriminator loss config"
        )

    def r1_due(self, iteration: int) -> bool:
        """Whether R1 runs at the recipe's ``iteration`` index."""
        return self.r1_interval > 0 and iteration % self.r1_interval == 0

    def forward(
        self, net_d: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        fake_pred = net_d(fake.detach())
        real_pred = net_d(real)
        loss = gan_loss(real_pred, True, self.real_criterion, True) + gan_loss(
            fake_pred, False, self.fake_criterion, True
        )
        logs = {
            "loss": loss.detach(),
            "real_score": real_pred.detach().mean(),
            "fake_score": fake_pred.detach().mean(),
        }
        return loss, logs

    def r1(self, net_d: Callable[[Tensor], Tensor], real: Tensor) -> tuple[Tensor, Tensor]:
        """``(weighted lazy R1 term, raw R1)`` on ``real`` in float32 with autocast off."""
        with torch.autocast(device_type=real.device.type, enabled=False):
            real = real.detach().float().requires_grad_(True)
            pred = net_d(real)
            penalty = r1_penalty(pred, real)
            # the zero term keeps every output of D in the graph (DDP sees all parameters used)
            term = self.r1_weight / 2 * penalty * self.r1_interval + 0 * pred[0].sum()
        return term, penalty.detach()


#: cache key of the main discriminator in ``GeneratorContext._cache`` (components use their names)
_MAIN_D = "<net_d>"


@dataclass
class GeneratorContext:
    """What the generator terms of one iteration may look at.

    ``crops`` maps a component name to ``(restored_crop, gt_crop)``. ``run_component`` runs a
    component discriminator once per iteration and input and caches ``(logits, features)``.

    ``net_d_features`` (optional) is the main discriminator's ``forward_features`` (logits and the
    list of intermediate activations); :meth:`main_d` runs it once per iteration and input, so
    the adversarial and the feature-matching terms share one discriminator forward.
    """

    output: Tensor
    gt: Tensor
    out_rgbs: Sequence[Tensor]
    iteration: int
    net_d: Callable[[Tensor], Tensor] | None = None
    component_ds: Mapping[str, nn.Module] = field(default_factory=dict)
    crops: Mapping[str, tuple[Tensor, Tensor]] = field(default_factory=dict)
    _cache: dict[tuple[str, str], tuple[Tensor, list[Tensor]]] = field(default_factory=dict)
    net_d_features: Callable[[Tensor], tuple[Tensor, list[Tensor]]] | None = None

    def run_component(self, name: str, which: str) -> tuple[Tensor, list[Tensor]]:
        """``(logits, [conv3, conv5] features)`` of component ``name`` on the ``fake``/``real`` crop."""
        key = (name, which)
        if key not in self._cache:
            fake, real = self.crops[name]
            logits, feats = self.component_ds[name](
                fake if which == "fake" else real, return_feats=True
            )
            self._cache[key] = (logits, list(feats or []))
        return self._cache[key]

    def main_d(self, which: str) -> tuple[Tensor, list[Tensor]]:
        """``(logits, features)`` of ``net_d_features`` on the ``fake`` (``output``) or ``real``
        (``gt``, under ``torch.no_grad()``) image, computed once and cached."""
        if which not in ("fake", "real"):
            raise ValueError(f"main_d expects 'fake' or 'real', got {which!r}")
        if self.net_d_features is None:
            raise RuntimeError(
                "this generator term needs the main discriminator's features, but the context "
                "has no net_d_features"
            )
        key = (_MAIN_D, which)
        if key not in self._cache:
            if which == "fake":
                logits, feats = self.net_d_features(self.output)
            else:
                with torch.no_grad():
                    logits, feats = self.net_d_features(self.gt)
            self._cache[key] = (logits, list(feats))
        return self._cache[key]


class ContextTerm(nn.Module):
    """A generator loss term computed from a :class:`GeneratorContext`."""

    #: the term reads the generator's intermediate RGB outputs (``ctx.out_rgbs``)
    needs_rgb = False

    def __init__(self, weight: float) -> None:
        super().__init__()
        self.weight = float(weight)

    def active(self, iteration: int) -> bool:
        """Whether the term has to be computed at ``iteration`` (1-based)."""
        return self.weight > 0

    def forward(self, ctx: GeneratorContext) -> Tensor | dict[str, Tensor]:
        raise NotImplementedError


class Adversarial(ContextTerm):
    """``weight · criterion(D(output), real)`` with the main discriminator.

    With ``ctx.net_d_features`` set the logits come from the cached ``ctx.main_d("fake")`` (one
    discriminator forward shared with :class:`FeatureMatching`), otherwise from ``ctx.net_d``.
    """

    def __init__(self, weight: float = 0.1, criterion: str = "wgan_softplus") -> None:
        super().__init__(weight)
        self.criterion = check_criterion("criterion", criterion)

    def forward(self, ctx: GeneratorContext) -> Tensor:
        if ctx.net_d_features is not None:
            logits = ctx.main_d("fake")[0]
        elif ctx.net_d is not None:
            logits = ctx.net_d(ctx.output)
        else:
            raise RuntimeError("the adversarial term needs a discriminator")
        return self.weight * gan_loss(logits, True, self.criterion, False)


FEATURE_DISTANCES = ("mse", "l1")


class FeatureMatching(ContextTerm):
    """Discriminator feature matching, GPEN's ``L_F = Σ_j ‖D_j(X) − D_j(G(X̃))‖``.

    ``D_j`` are the main discriminator's intermediate activations (``ctx.main_d``: the body blocks
    and the final conv); the real features are computed without gradient. The paper gives no
    normalisation for the norm; here each selected layer contributes the MEAN of its element-wise
    distance (``F.mse_loss`` or ``F.l1_loss``), so layers of different sizes weigh alike, and the
    per-layer means are summed: ``weight · Σ_j mean(dist(D_j(fake), D_j(real)))``.

    Args:
        weight: loss weight.
        distance: ``"mse"`` (squared error) or ``"l1"``.
        layers: indices into the feature list (negative indices allowed); ``None`` uses all.
    """

    def __init__(
        self, weight: float = 0.02, distance: str = "mse", layers: Sequence[int] | None = None
    ) -> None:
        super().__init__(weight)
        if distance not in FEATURE_DISTANCES:
            raise ValueError(
                "model.generator_losses.feature_matching.distance must be one of "
                f"{FEATURE_DISTANCES}, got {distance!r}"
            )
        self.distance = distance
        self.layers = None if layers is None else [int(i) for i in layers]

    def forward(self, ctx: GeneratorContext) -> Tensor:
        if ctx.net_d_features is None:
            raise RuntimeError(
                "the feature-matching term needs the main discriminator's features: build the "
                "GeneratorContext with net_d_features (e.g. the discriminator's forward_features)"
            )
        fake = ctx.main_d("fake")[1]
        real = ctx.main_d("real")[1]
        if len(fake) != len(real):
            raise RuntimeError(
                f"feature matching got {len(fake)} fake and {len(real)} real feature maps"
            )
        indices = range(len(fake)) if self.layers is None else self.layers
        dist = F.mse_loss if self.distance == "mse" else F.l1_loss
        total = ctx.output.new_zeros((), dtype=torch.float32)
        for i in indices:
            if not -len(fake) <= i < len(fake):
                raise IndexError(
                    f"model.generator_losses.feature_matching.layers: index {i} is out of range "
                    f"for {len(fake)} discriminator feature maps"
                )
            total = total + dist(fake[i].float(), real[i].detach().float())
        return self.weight * total


class ImagePyramid(ContextTerm):
    """L1 between the generator's intermediate RGB outputs and a bilinear pyramid of the GT.

    The pyramid halves the GT (bilinear, ``align_corners=False``) down to the coarsest output. After
    ``until_iteration`` the weight becomes ``residual_weight`` (GFP-GAN keeps 1e-12 rather than 0 so
    that DDP still sees gradients for the ``toRGB`` layers).
    """

    needs_rgb = True

    def __init__(
        self,
        weight: float = 1.0,
        until_iteration: int | None = None,
        residual_weight: float = 1e-12,
    ) -> None:
        super().__init__(weight)
        self.until_iteration = until_iteration
        self.residual_weight = float(residual_weight)

    def weight_at(self, iteration: int) -> float:
        if self.until_iteration is not None and iteration > self.until_iteration:
            return self.residual_weight
        return self.weight

    def active(self, iteration: int) -> bool:
        return self.weight_at(iteration) > 0

    def forward(self, ctx: GeneratorContext) -> dict[str, Tensor]:
        if not ctx.out_rgbs:
            raise RuntimeError("the image pyramid term needs the intermediate RGB outputs")
        weight = self.weight_at(ctx.iteration)
        target = ctx.gt
        out: dict[str, Tensor] = {}
        for rgb in reversed(ctx.out_rgbs):
            while target.shape[-1] > rgb.shape[-1]:
                target = F.interpolate(
                    target, scale_factor=0.5, mode="bilinear", align_corners=False
                )
            out[str(rgb.shape[-1])] = weight * F.l1_loss(rgb, target)
        return dict(reversed(out.items()))


class ComponentAdversarial(ContextTerm):
    """``weight · Σ_c criterion(D_c(restored crop), real)`` over the facial components."""

    def __init__(self, weight: float = 1.0, criterion: str = "vanilla") -> None:
        super().__init__(weight)
        self.criterion = check_criterion("criterion", criterion)

    def forward(self, ctx: GeneratorContext) -> dict[str, Tensor]:
        return {
            name: self.weight
            * gan_loss(ctx.run_component(name, "fake")[0], True, self.criterion, False)
            for name in ctx.crops
        }


class ComponentStyle(ContextTerm):
    """Gram-matrix L1 between component-discriminator features of restored and GT crops.

    ``layer_weights`` weigh the two feature maps the component discriminators return (conv3,
    conv5); the GT features are detached.
    """

    def __init__(self, weight: float = 200.0, layer_weights: Sequence[float] = (0.5, 1.0)) -> None:
        super().__init__(weight)
        self.layer_weights = [float(w) for w in layer_weights]

    def forward(self, ctx: GeneratorContext) -> Tensor:
        total = ctx.output.new_zeros((), dtype=torch.float32)
        for name in ctx.crops:
            fake = ctx.run_component(name, "fake")[1]
            real = ctx.run_component(name, "real")[1]
            for w, f, r in zip(self.layer_weights, fake, real, strict=True):
                total = total + w * F.l1_loss(gram_matrix(f), gram_matrix(r.detach()))
        return self.weight * total
