"""Feature family `ngtdm` (not implemented yet: registers no features)."""

from __future__ import annotations

from typing import Dict, Iterable

from ..context import RoiContext

FAMILY = "ngtdm"
SPECS = ()


def compute(ctx: RoiContext, tags: Iterable[str]) -> Dict[str, float]:
    raise NotImplementedError(f"feature family {FAMILY!r} is not implemented")
