"""Write PySERASlicerLib/engine/features/marching_cubes_cases.py: the triangles that
scikit-image's marching cubes (Lewiner, ``skimage.measure.marching_cubes``) puts into one cube of
a binary mask, for each of the 256 corner patterns.

On a 0/1 mask at level 0.5 every vertex is the midpoint of a cube edge (or, in Lewiner's
tilings of 24 ambiguous patterns, the centre of the cube), and Lewiner's decisions depend on
the cube's eight corners only, so running scikit-image on each corner pattern alone gives its
whole mesh cube by cube. The morphology code sums per-pattern areas and volumes over these
tables, so its mesh is scikit-image's without depending on it at run time.
Testing/test_marching_cubes.py compares both on masks.

Run (needs scikit-image, BSD-3-Clause, Copyright the scikit-image team):
    python scripts/generate_marching_cubes_cases.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from skimage import __version__ as skimage_version
from skimage.measure import marching_cubes

TARGET = Path(__file__).resolve().parents[1] / "PySERASlicer" / "PySERASlicerLib" / "engine" / "features" \
    / "marching_cubes_cases.py"

#: cube corner c has offset (i, j, k) = (c & 1, (c >> 1) & 1, (c >> 2) & 1); edges join corners
#: that differ in one bit, numbered in this order
CORNERS = np.array([[c & 1, (c >> 1) & 1, (c >> 2) & 1] for c in range(8)], dtype=float)
EDGES = [(a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1]
CENTRE = len(EDGES)  # vertex code of the cube centre (Lewiner's extra vertex)
DIGITS = "0123456789abc"


def case_triangles(case: int) -> str:
    """The triangles of one corner pattern as vertex codes, 3 characters per triangle."""
    cube = np.zeros((2, 2, 2))
    for c in range(8):
        cube[(c >> 2) & 1, (c >> 1) & 1, c & 1] = (case >> c) & 1
    vertices, faces, _, _ = marching_cubes(cube, 0.5, method="lewiner")
    ijk = vertices[:, ::-1].astype(np.float64)  # skimage gives (k, j, i)
    midpoints = np.array([CORNERS[list(edge)].mean(axis=0) for edge in EDGES])
    codes = []
    for point in ijk:
        distance = np.abs(midpoints - point).max(axis=1)
        if distance.min() < 1e-5:
            codes.append(int(np.argmin(distance)))
        elif np.abs(point - 0.5).max() < 1e-5:
            codes.append(CENTRE)
        else:
            raise AssertionError(f"case {case}: vertex {point} is neither an edge midpoint nor the cube centre")
    return "".join(DIGITS[codes[v]] for triangle in faces for v in triangle)


def main() -> None:
    cases = [""] + [case_triangles(case) for case in range(1, 255)] + [""]
    lines = [
        '"""Marching-cubes triangles of one cube of a binary mask, per corner pattern (generated).',
        "",
        f"Written by scripts/generate_marching_cubes_cases.py from scikit-image {skimage_version}'s",
        "``skimage.measure.marching_cubes`` (Lewiner; BSD-3-Clause, Copyright the scikit-image team).",
        "",
        "``CASES[p]`` lists the triangles of corner pattern ``p`` (bit c set: corner c inside; corner c",
        "at offset (c & 1, (c >> 1) & 1, (c >> 2) & 1) along (i, j, k)), three characters per triangle:",
        "the hexadecimal index of a cube edge in :data:`EDGES` (its midpoint) or ``c`` for the cube",
        "centre. Do not edit by hand.",
        '"""',
        "",
        f"EDGES = {tuple(EDGES)!r}",
        "",
        "CASES = (",
    ]
    lines += [f'    "{text}",' for text in cases]
    lines += [")", ""]
    TARGET.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {TARGET}")


if __name__ == "__main__":
    main()
