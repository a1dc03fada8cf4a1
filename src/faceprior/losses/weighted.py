"""Combine named loss terms into one objective while keeping every part for logging."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn


def sum_parts(
    values: Mapping[str, Tensor | Mapping[str, Tensor]],
) -> tuple[Tensor, dict[str, Tensor]]:
    """Flatten ``name -> value`` (dict values become ``name/sub``) and sum them in float32."""
    parts: dict[str, Tensor] = {}
    for name, value in values.items():
        if isinstance(value, Mapping):
            parts.update({f"{name}/{k}": v for k, v in value.items()})
        else:
            parts[name] = value
    total = torch.stack([v.float() for v in parts.values()]).sum()
    return total, parts


class WeightedLoss(nn.Module):
    """A mapping ``name -> term``; each term returns a weighted tensor or a dict of weighted parts.

    ``forward(pred, target)`` returns ``(total, parts)`` where ``parts`` holds every term by name
    (dict-valued terms contribute ``name/sub`` entries). Terms are configured with their own ``weight``
    arguments, so the config reads as the published recipe.
    """

    def __init__(self, terms: Mapping[str, nn.Module]) -> None:
        super().__init__()
        if not terms:
            raise ValueError("WeightedLoss needs at least one term")
        self.terms = nn.ModuleDict(dict(terms))

    def forward(self, pred: Tensor, target: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        return sum_parts({name: term(pred, target) for name, term in self.terms.items()})
