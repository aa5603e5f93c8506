"""Time the whole non-texture feature set of one ~32,000-voxel lesion (warm), for the speed goal.

Synthetic 256 x 256 x 64 int16 CT, spacing 0.8 x 0.8 x 2.5 mm, an ellipsoid lesion of about
32,000 voxels. Run: ``.venv/bin/python scripts/bench_first_order.py``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "PySERASlicer"))

from PySERASlicerLib.engine.pipeline import extract_roi  # noqa: E402
from PySERASlicerLib.engine.registry import select  # noqa: E402
from PySERASlicerLib.image import Image  # noqa: E402
from PySERASlicerLib.settings import preset_settings  # noqa: E402


def synthetic_case():
    rng = np.random.default_rng(0)
    array = rng.normal(40, 30, size=(64, 256, 256)).astype(np.int16)
    k, j, i = np.ogrid[:64, :256, :256]
    # semi-axes (mm) 26 x 22 x 21.4 -> about 32,000 voxels of 0.8 x 0.8 x 2.5 mm
    inside = ((i - 128) * 0.8 / 26.0) ** 2 + ((j - 120) * 0.8 / 22.0) ** 2 + ((k - 32) * 2.5 / 21.4) ** 2 <= 1
    array[inside] += 60
    return Image(array, spacing=(0.8, 0.8, 2.5), modality="CT"), inside


def main() -> None:
    image, mask = synthetic_case()
    print(f"lesion voxels: {int(mask.sum())}")
    specs = select("diag,morph,ip,stat,ih,ivh", "1st")
    for preset in ("ibsi_A", "ibsi_C"):
        settings = preset_settings(preset)
        extract_roi(image, mask, settings, specs=specs)  # warm-up (caches, imports)
        times = []
        for _ in range(5):
            start = time.perf_counter()
            extract_roi(image, mask, settings, specs=specs)
            times.append(time.perf_counter() - start)
        print(f"{preset}: {len(specs)} non-texture features, best {min(times) * 1000:.0f} ms, "
              f"median {sorted(times)[2] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
