r"""Morphological features (IBSI 3.1).

Symbols: the **mesh** is the triangulated surface of the morphological mask (marching cubes at
iso-level 0.5 on the mask padded with one empty voxel, so it is closed), with :math:`V` its
enclosed volume and :math:`A` its area; :math:`N_v` is the number of mask voxels; the convex
hull, bounding boxes, ellipsoids and the maximum diameter use the mesh vertices;
:math:`\lambda_{major} \ge \lambda_{minor} \ge \lambda_{least}` are the eigenvalues of the
covariance matrix of the mask voxel centres (PCA); :math:`X_{gl}` are the intensities of the
intensity mask. All distances are in world units (mm); the voxel grid's direction cosines do
not change any value and are ignored.

Marching cubes here: the mesh is scikit-image's (``skimage.measure.marching_cubes``, Lewiner's
tables with their resolution of ambiguous and tied faces) without depending on it at run time.
A binary mask puts every mesh vertex at the midpoint of a cube edge whose two corners differ
(or, in 24 ambiguous patterns, at the cube centre), and the triangles inside a cube depend only
on the cube's corner pattern (256 cases), so they are a table
(:mod:`.marching_cubes_cases`, generated from scikit-image by
``scripts/generate_marching_cubes_cases.py``; Testing/test_marching_cubes.py compares the
meshes). Area and volume are then sums over the cases: the volume by the divergence theorem,
:math:`V = \sum_{t} (a_t \cdot (b_t \times c_t)) / 6`, split into a per-case constant plus a term
linear in the cube position, so no triangle is ever built per cube.
"""

from __future__ import annotations

import math
from functools import cache, lru_cache
from typing import Dict, Iterable, Tuple

import numpy as np
from scipy import fft as sfft
from scipy import special
from scipy.spatial import ConvexHull, distance

from ..context import RoiContext
from ..processing import bounding_box
from ..registry import volume_specs

FAMILY = "morph"

ROWS = (
    ("morph_volume", "Volume (mesh)", "RNU0"),
    ("morph_vol_approx", "Volume (voxel counting)", "YEKZ"),
    ("morph_area_mesh", "Surface area (mesh)", "C0JK"),
    ("morph_av", "Surface to volume ratio", "2PR5"),
    ("morph_comp_1", "Compactness 1", "SKGS"),
    ("morph_comp_2", "Compactness 2", "BQWJ"),
    ("morph_sph_dispr", "Spherical disproportion", "KRCK"),
    ("morph_sphericity", "Sphericity", "QCFX"),
    ("morph_asphericity", "Asphericity", "25C7"),
    ("morph_com", "Centre of mass shift", "KLMA"),
    ("morph_diam", "Maximum 3D diameter", "L0JK"),
    ("morph_pca_maj_axis", "Major axis length", "TDIC"),
    ("morph_pca_min_axis", "Minor axis length", "P9VJ"),
    ("morph_pca_least_axis", "Least axis length", "7J51"),
    ("morph_pca_elongation", "Elongation", "Q3CK"),
    ("morph_pca_flatness", "Flatness", "N17B"),
    ("morph_vol_dens_aabb", "Volume density (axis-aligned bounding box)", "PBX1"),
    ("morph_area_dens_aabb", "Area density (axis-aligned bounding box)", "R59B"),
    ("morph_vol_dens_ombb", "Volume density (oriented minimum bounding box)", "ZH1A"),
    ("morph_area_dens_ombb", "Area density (oriented minimum bounding box)", "IQYR"),
    ("morph_vol_dens_aee", "Volume density (approximate enclosing ellipsoid)", "6BDE"),
    ("morph_area_dens_aee", "Area density (approximate enclosing ellipsoid)", "RDD2"),
    ("morph_vol_dens_mvee", "Volume density (minimum volume enclosing ellipsoid)", "SWZ1"),
    ("morph_area_dens_mvee", "Area density (minimum volume enclosing ellipsoid)", "BRI8"),
    ("morph_vol_dens_conv_hull", "Volume density (convex hull)", "R3ER"),
    ("morph_area_dens_conv_hull", "Area density (convex hull)", "7T7F"),
    ("morph_integ_int", "Integrated intensity", "99N0"),
    ("morph_moran_i", "Moran's I index", "N365"),
    ("morph_geary_c", "Geary's C measure", "NPT7"),
)
SPECS = volume_specs(FAMILY, ROWS)

_NAN = float("nan")


# ---------------------------------------------------------------------------------------------
# Marching cubes on a binary mask, as per-case sums
# ---------------------------------------------------------------------------------------------
# Cube corner c has local offset (c & 1, (c >> 1) & 1, (c >> 2) & 1) along (i, j, k).
_CORNERS = np.array([[c & 1, (c >> 1) & 1, (c >> 2) & 1] for c in range(8)], dtype=float)


@cache
def _case_triangles() -> Tuple[np.ndarray, np.ndarray]:
    """Every triangle (n, 3, 3) of the 256 corner patterns in unit-cube coordinates, oriented
    with normals pointing out of the object (right-hand rule), and the pattern of each (n,)."""
    from .marching_cubes_cases import CASES, EDGES

    # vertex codes: 0..11 the midpoints of EDGES, 12 ("c") the cube centre
    points = np.array([_CORNERS[list(edge)].mean(axis=0) for edge in EDGES] + [[0.5, 0.5, 0.5]])
    codes = [[int(digit, 16) for digit in text] for text in CASES]
    triangles = points[np.array([code for pattern in codes for code in pattern], dtype=np.intp)].reshape(-1, 3, 3)
    patterns = np.repeat(np.arange(len(CASES)), [len(pattern) // 3 for pattern in codes])
    return triangles, patterns


@lru_cache(maxsize=64)
def _case_sums(spacing: Tuple[float, float, float]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per case: mesh area, local signed-volume term and the vector multiplying the cube origin.
    All triangles at once: a batch of scans with as many voxel spacings pays this per scan."""
    triangles, patterns = _case_triangles()
    scaled = triangles * np.asarray(spacing)
    a, b, c = scaled[:, 0], scaled[:, 1], scaled[:, 2]
    cross = np.cross(b - a, c - a)
    area = 0.5 * np.bincount(patterns, weights=np.sqrt(np.einsum("ij,ij->i", cross, cross)), minlength=256)
    local = np.bincount(patterns, weights=np.einsum("ij,ij->i", a, np.cross(b, c)), minlength=256) / 6.0
    linear = np.stack([np.bincount(patterns, weights=cross[:, axis], minlength=256) for axis in range(3)],
                      axis=1) / 6.0
    return area, local, linear


def mesh_area_volume(mask: np.ndarray, spacing_ijk) -> Tuple[float, float]:
    """``(area, volume)`` of the marching-cubes mesh of a boolean (k, j, i) mask (mm^2, mm^3)."""
    m = np.pad(mask, 1).astype(np.uint8)
    nk, nj, ni = (n - 1 for n in m.shape)
    case = np.zeros((nk, nj, ni), dtype=np.uint8)
    for c in range(8):
        di, dj, dk = c & 1, (c >> 1) & 1, (c >> 2) & 1
        case |= m[dk:dk + nk, dj:dj + nj, di:di + ni] << c
    k, j, i = np.nonzero((case != 0) & (case != 255))
    cases = case[k, j, i]
    counts = np.bincount(cases, minlength=256)
    scale = np.asarray(spacing_ijk, dtype=float)
    area_c, local_c, linear_c = _case_sums(tuple(float(s) for s in spacing_ijk))
    origin_sums = np.stack([np.bincount(cases, weights=pos, minlength=256) * s
                            for pos, s in zip((i, j, k), scale)], axis=1)
    area = float(counts @ area_c)
    volume = float(counts @ local_c + np.einsum("ij,ij->", origin_sums, linear_c))
    return area, volume


def mesh_vertices(mask: np.ndarray, spacing_ijk, hull_candidates: bool = False) -> np.ndarray:
    """Mesh vertices (n, 3) in mm along (i, j, k): midpoints between a mask voxel and a
    non-mask voxel along each axis (the mask is treated as padded with empty voxels).

    ``hull_candidates`` keeps, of each grid line along i, only its first and last vertex of each
    kind (crossings of the same axis): the vertices of one kind on one line are collinear, and
    one with others on both sides lies inside their segment, so it is never a convex-hull vertex
    and dropping it changes neither the hull nor the bounding box.
    """
    m = np.pad(mask, 1)
    points = []
    for axis in range(3):  # array axes k, j, i
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        crossing = m[tuple(lo)] != m[tuple(hi)]
        if hull_candidates:
            idx = _line_ends(crossing)
        else:
            idx = np.array(np.nonzero(crossing))
        idx = idx.astype(float)
        idx[axis] += 0.5
        points.append(idx)
    kji = np.concatenate(points, axis=1) - 1.0  # undo the padding
    return kji[::-1].T * np.asarray(spacing_ijk, dtype=float)


def _line_ends(cells: np.ndarray) -> np.ndarray:
    """Indices (3, n) of the first and last True cell of each line along the last axis of a
    boolean 3D array (once where they coincide), lines in raster order: the order in which
    ``np.nonzero`` lists them, without listing the cells in between."""
    occupied = cells.any(axis=2)
    first = cells.argmax(axis=2)
    last = cells.shape[2] - 1 - cells[:, :, ::-1].argmax(axis=2)
    k, j = np.nonzero(occupied)
    first, last = first[k, j], last[k, j]
    keep = np.ones((len(k), 2), dtype=bool)
    keep[:, 1] = last != first
    keep = keep.ravel()
    return np.stack([np.repeat(k, 2)[keep], np.repeat(j, 2)[keep], np.stack([first, last], axis=1).ravel()[keep]])


# ---------------------------------------------------------------------------------------------
# Moments of the voxel centres, from projections of the mask
# ---------------------------------------------------------------------------------------------
def voxel_moments(mask: np.ndarray, spacing_ijk) -> Tuple[int, np.ndarray, np.ndarray]:
    """``(n, centre, covariance)`` of the voxel centres of a boolean (k, j, i) mask, in mm along
    (i, j, k) from the array's first voxel: the mean (3,) and the covariance (3, 3), normalised by
    ``n - 1`` as ``np.cov`` (zeros for fewer than 2 voxels).

    Every sum is an exact integer sum over the mask's three 2D projections (the cross moment of
    axes a and b is a weighted sum of the projection on (a, b)), so no array of voxel positions is
    built, and the covariance is ``(n S_ab - S_a S_b) / (n (n - 1))`` in exact (Python) integers
    before the one conversion to float: no cancellation."""
    p_ji, p_ki, p_kj = (mask.sum(axis=axis, dtype=np.int64) for axis in (0, 1, 2))
    k, j, i = (np.arange(n, dtype=np.int64) for n in mask.shape)
    per_axis = (p_ji.sum(axis=0), p_ji.sum(axis=1), p_kj.sum(axis=1))  # counts along i, j, k
    index = (i, j, k)
    n = int(per_axis[0].sum())
    first = [int(index[a] @ per_axis[a]) for a in range(3)]
    cross = {(0, 1): j @ p_ji @ i, (0, 2): k @ p_ki @ i, (1, 2): k @ p_kj @ j}
    spacing = np.asarray(spacing_ijk, dtype=float)
    centre = np.array(first, dtype=float) / max(n, 1) * spacing
    covariance = np.zeros((3, 3))
    if n > 1:
        for a in range(3):
            for b in range(a, 3):
                s_ab = int(index[a] * index[a] @ per_axis[a]) if a == b else int(cross[a, b])
                covariance[a, b] = covariance[b, a] = (float(n * s_ab - first[a] * first[b])
                                                       * spacing[a] * spacing[b] / (n * (n - 1)))
    return n, centre, covariance


def weighted_centre(weights: np.ndarray, spacing_ijk) -> np.ndarray:
    """``sum_x w(x) x`` (3,) over the voxel centres (mm along (i, j, k), from the first voxel) of a
    (k, j, i) float array of weights, from its per-axis sums."""
    plane = weights.sum(axis=0)  # (j, i)
    sums = (plane.sum(axis=0), plane.sum(axis=1), weights.sum(axis=(1, 2)))
    return np.array([np.arange(len(s)) @ s for s in sums]) * np.asarray(spacing_ijk, dtype=float)


# ---------------------------------------------------------------------------------------------
# Enclosing shapes
# ---------------------------------------------------------------------------------------------
def ellipsoid_area(a: float, b: float, c: float) -> float:
    r"""Surface area of an ellipsoid with semi-axes a, b, c (exact, incomplete elliptic integrals):
    :math:`A = 2\pi c^2 + \frac{2\pi ab}{\sin\varphi}(E(\varphi,k)\sin^2\varphi + F(\varphi,k)\cos^2\varphi)`,
    :math:`\cos\varphi = c/a`, :math:`k^2 = a^2(b^2-c^2)/(b^2(a^2-c^2))` for a >= b >= c."""
    a, b, c = sorted((float(a), float(b), float(c)), reverse=True)
    if a - c <= 1e-12 * a:
        return 4.0 * math.pi * a * a
    phi = math.acos(c / a)
    m = (a * a * (b * b - c * c)) / (b * b * (a * a - c * c))
    sin_phi = math.sin(phi)
    return 2.0 * math.pi * c * c + 2.0 * math.pi * a * b / sin_phi * (
        special.ellipeinc(phi, m) * sin_phi**2 + special.ellipkinc(phi, m) * math.cos(phi) ** 2
    )


def ellipsoid_area_ibsi(a: float, b: float, c: float) -> float:
    r"""Ellipsoid surface area as IBSI defines it for the AEE/MVEE area densities (IBSI 3.1.21):
    :math:`A = 4\pi a b \sum_{\nu=0}^{20} \frac{(\alpha\beta)^\nu}{1 - 4\nu^2}
    P_\nu\left(\frac{\alpha^2 + \beta^2}{2\alpha\beta}\right)`,
    :math:`\alpha = \sqrt{1 - b^2/a^2}`, :math:`\beta = \sqrt{1 - c^2/a^2}`, with Legendre
    polynomials :math:`P_\nu`. This series is *not* the exact area (e.g. 286.5 instead of 297.6
    for the digital phantom's AEE), but the IBSI reference values follow it
    (``morph_area_dens_aee`` = 1.36 for the phantom; the exact area gives 1.30), so it is kept.
    Where the series is singular (a sphere, or a = b) the exact area is used.
    """
    a, b, c = sorted((float(a), float(b), float(c)), reverse=True)
    alpha, beta = math.sqrt(max(1 - b * b / (a * a), 0.0)), math.sqrt(max(1 - c * c / (a * a), 0.0))
    if alpha * beta < 1e-6:
        return ellipsoid_area(a, b, c)
    nu = np.arange(21)
    x = (alpha**2 + beta**2) / (2 * alpha * beta)
    terms = (alpha * beta) ** nu / (1 - 4 * nu**2) * special.eval_legendre(nu, x)
    return float(4 * math.pi * a * b * terms.sum())


def minimum_volume_enclosing_ellipsoid(points: np.ndarray, tolerance: float = 1e-4,
                                       max_iterations: int = 500) -> Tuple[np.ndarray, np.ndarray]:
    r"""Minimum-volume enclosing ellipsoid ``(centre, semi_axes)`` of 3D points.

    Solved through its dual, the D-optimal design problem on the lifted points
    :math:`q_j = (x_j, 1)`: maximise :math:`\log\det X(u)`, :math:`X(u) = \sum_j u_j q_j q_j^T`,
    over the simplex (Khachiyan 1996). With :math:`M_j = q_j^T X^{-1} q_j`, any weights satisfy
    :math:`\sum_j u_j M_j = d + 1`, and :math:`\max_j M_j \le (1 + tol)(d + 1)` certifies that
    :math:`\log\det X` is within :math:`(d + 1)\log(1 + tol)` of its maximum. The problem is solved
    by a log-barrier interior-point method (Newton steps on
    :math:`\log\det X(u) + \mu \sum_j \log u_j` with :math:`\sum_j u_j = 1`; the Hessian
    :math:`(K \circ K) + \mu\,\mathrm{diag}(u^{-2})`, :math:`K = Q^T X^{-1} Q`, is a rank-10 update
    of a diagonal and is inverted by the Woodbury identity, so one step costs O(n)); some 20-40
    steps reach ``tol`` instead of thousands of Khachiyan coordinate steps. It stops as soon as the
    certificate holds; the ellipsoid is then scaled by ``max_j M_j / (d + 1)`` so that it encloses
    every point, which keeps its volume within about ``2 tol`` of the optimum. Pass the convex hull
    vertices: interior points never support the ellipsoid. Should the Newton system become
    numerically singular, Khachiyan's coordinate ascent (:func:`_khachiyan`) finishes from the
    current weights.
    """
    p = np.asarray(points, dtype=float)
    n, d = p.shape
    centre0 = p.mean(axis=0)
    scale = np.abs(p - centre0).max() or 1.0
    pts = (p - centre0) / scale
    q = np.vstack([pts.T, np.ones(n)])  # lifted points (d + 1, n)
    target = d + 1.0
    rows, cols = np.triu_indices(d + 1)
    pair_weight = np.where(rows == cols, 1.0, math.sqrt(2.0))  # (K o K) = F F^T, F_j = sym(r_j r_j^T)
    identity = np.eye(len(rows))
    u = np.full(n, 1.0 / n)
    mu = target / n  # barrier weight: on the central path max_j M_j <= (d + 1) + n mu

    # The matrix products below are small (at most 10 x n x 10): OpenBLAS runs them in the
    # calling thread, several times faster than einsum's loops.
    def factor(weights: np.ndarray) -> Tuple[np.ndarray, float]:
        """``(r, log det X)``, ``r = L^-1 Q`` with ``X = L L^T``, so ``M_j = |r_j|^2``."""
        chol = np.linalg.cholesky((q * weights) @ q.T)
        return np.linalg.inv(chol) @ q, 2.0 * float(np.log(np.diag(chol)).sum())

    converged = False
    try:
        r, logdet = factor(u)
        for _ in range(max_iterations):
            m = np.einsum("ij,ij->j", r, r)
            if m.max() <= (1.0 + tolerance) * target:
                converged = True
                break
            gradient = m + mu / u
            scaled = u / math.sqrt(mu)  # diag(mu / u^2)^(-1/2)
            g = r[rows] * r[cols]
            g *= pair_weight[:, None] * scaled  # (D^-1/2 F)^T, (10, n)
            rhs = np.stack([gradient * scaled, scaled])
            capacitance = identity + g @ g.T
            solved = rhs - np.linalg.solve(capacitance, g @ rhs.T).T @ g
            solved *= scaled  # A^-1 [gradient, 1], A = D + F F^T
            step = solved[0] - solved[0].sum() / solved[1].sum() * solved[1]  # keeps sum(u) = 1
            decrement = float(gradient @ step)  # Newton decrement^2 times mu
            if not (np.isfinite(decrement) and decrement > 0):
                break
            shrinking = step < 0
            t = min(1.0, 0.99 * float(np.min(-u[shrinking] / step[shrinking]))) if shrinking.any() else 1.0
            phi = logdet + mu * float(np.log(u).sum())
            while True:  # backtracking (Armijo) on the barrier objective
                trial = u + t * step
                r_trial, logdet_trial = factor(trial)
                if logdet_trial + mu * float(np.log(trial).sum()) >= phi + 0.25 * t * decrement or t < 1e-12:
                    break
                t *= 0.5
            u, r, logdet = trial, r_trial, logdet_trial
            if decrement < 0.5 * mu:  # close to the central path (Newton decrement^2 < 1/2): next mu
                mu *= 0.1
    except np.linalg.LinAlgError:
        converged = False
    if not converged:
        u = _khachiyan(q, np.maximum(u, 0.0) / np.maximum(u, 0.0).sum(), tolerance)
    centre = pts.T @ u
    shape = np.linalg.inv(np.einsum("ni,nj,n->ij", pts, pts, u) - np.outer(centre, centre)) / d
    diff = pts - centre
    reach = float(np.einsum("ij,jk,ik->i", diff, shape, diff).max())  # >= 1 - tol: enclose all
    semi_axes = np.sqrt(max(reach, 1.0)) / np.sqrt(np.linalg.eigvalsh(shape))
    return centre * scale + centre0, np.sort(semi_axes)[::-1] * scale


def _khachiyan(q: np.ndarray, u: np.ndarray, tolerance: float, max_iterations: int = 100000) -> np.ndarray:
    """Khachiyan's barycentric coordinate ascent with Todd-Yildirim away steps from weights ``u``
    (rank-one Sherman-Morrison updates of the inverse moment matrix); the fallback of
    :func:`minimum_volume_enclosing_ellipsoid`. Stops when every point has
    ``M_j <= (1 + tol)(d + 1)`` and every support point ``M_j >= (1 - tol)(d + 1)``."""
    target = float(q.shape[0])
    u = u.copy()
    x_inv = np.linalg.inv((q * u) @ q.T)
    m = np.einsum("ij,ij->j", q, x_inv @ q)
    for _ in range(max_iterations):
        j_up = int(np.argmax(m))
        support = u > 0
        j_down = int(np.argmin(np.where(support, m, np.inf)))
        up_gap, down_gap = m[j_up] - target, target - m[j_down]
        if up_gap <= tolerance * target and down_gap <= tolerance * target:
            break
        if up_gap >= down_gap:
            j, step = j_up, up_gap / (target * (m[j_up] - 1.0))
        else:
            j = j_down
            step = max(-down_gap / (target * (m[j_down] - 1.0)), -u[j] / (1.0 - u[j]))
        # X' = (1 - step) X + step q_j q_j^T  ->  Sherman-Morrison for X'^-1 and M
        g = x_inv @ q[:, j]
        h = g @ q  # q_i^T X^-1 q_j for all i
        ratio = step / (1.0 - step)
        c = ratio / (1.0 + ratio * m[j])
        x_inv = (x_inv - c * np.outer(g, g)) / (1.0 - step)
        m = (m - c * h * h) / (1.0 - step)
        u *= 1.0 - step
        u[j] = max(u[j] + step, 0.0)
    return u


def _min_area_rectangle(points_2d: np.ndarray) -> Tuple[float, float, float]:
    """Minimum-area enclosing rectangle ``(area, w1, w2)`` of 2D points (rotating calipers: one side
    is collinear with an edge of the convex hull)."""
    hull_2d = ConvexHull(points_2d)
    vertices = points_2d[hull_2d.vertices]
    edges = np.roll(vertices, -1, axis=0) - vertices
    edges /= np.linalg.norm(edges, axis=1, keepdims=True)
    along = vertices @ edges.T  # (vertex, edge)
    across = vertices @ np.stack([-edges[:, 1], edges[:, 0]], axis=1).T
    w1, w2 = np.ptp(along, axis=0), np.ptp(across, axis=0)
    best = int(np.argmin(w1 * w2))
    return float(w1[best] * w2[best]), float(w1[best]), float(w2[best])


def _rectangles(normals: np.ndarray, edges: np.ndarray, outline: np.ndarray,
                count: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimum-area rectangles ``(area, w1, w2)`` of several projected hulls at once.

    normals : (c, 3) unit normals of the projection planes;
    edges : (c, s, 3) edge vectors whose projections contain every side direction of each outline;
    outline : (c, s, 3) points whose projections span each projected hull;
    count : (c,) number of real entries per row (the rest is padding that repeats real entries).
    One side of a minimum-area enclosing rectangle is collinear with a hull edge (Freeman &
    Shapira 1975), so the widths along each edge direction and its normal are all that is needed.
    """
    n = normals[:, None, :]
    e = edges - np.einsum("csk,ck->cs", edges, normals)[:, :, None] * n  # directions in the plane
    length = np.sqrt(np.einsum("csk,csk->cs", e, e))
    valid = length > 1e-12
    e /= np.where(valid, length, 1.0)[:, :, None]
    directions = np.concatenate([e, np.cross(n, e)], axis=1)  # (c, 2 s, 3): the two side directions
    # batched small products: BLAS runs them one thread at a time
    proj = np.matmul(directions, outline.transpose(0, 2, 1))  # (c, 2 s, s)
    widths = proj.max(axis=2)
    widths -= proj.min(axis=2)
    s_max = edges.shape[1]
    w1, w2 = widths[:, :s_max], widths[:, s_max:]
    area = np.where(valid, w1 * w2, np.inf)
    choice = np.argmin(area, axis=1)
    pick = np.arange(len(normals))
    return area[pick, choice], w1[pick, choice], w2[pick, choice]


#: Largest m x n x k of a matrix product that OpenBLAS computes in the calling thread (its
#: GEMM_MULTITHREAD_THRESHOLD x 65536): larger ones wake its thread pool, which then competes
#: with the second ROI thread for the cores.
_SINGLE_THREAD_GEMM = 4 * 65536


def _outer_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b.T`` for (n, 3) and (m, 3) arrays, a BLAS product (some 30 times faster than
    broadcast multiply-adds); callers keep ``3 n m`` within :data:`_SINGLE_THREAD_GEMM`."""
    return a @ b.T


class _HullEdges:
    """The edges of a convex hull, each once, with what the silhouette search needs: the two
    facets, the endpoints (indices into the hull vertices), the edge vector, and for each of the
    two facets whether the directed outline edge starts at b when that facet is the one facing
    the viewer."""

    def __init__(self, hull: ConvexHull) -> None:
        points, simplices = hull.points, hull.simplices
        facet_normals = hull.equations[:, :3]
        facet = np.repeat(np.arange(len(simplices)), 3)
        opposite = np.tile(np.arange(3), len(simplices))
        neighbour = hull.neighbors.ravel()
        keep = facet < neighbour
        facet, neighbour, opposite = facet[keep], neighbour[keep], opposite[keep]
        edge_a = simplices[facet, (opposite + 1) % 3]
        edge_b = simplices[facet, (opposite + 2) % 3]
        self.vectors = points[edge_b] - points[edge_a]
        nb = simplices[neighbour]
        neighbour_third = nb[np.arange(len(nb)), np.argmax((nb != edge_a[:, None]) & (nb != edge_b[:, None]), axis=1)]

        def left_of_edge(third: np.ndarray, facets: np.ndarray) -> np.ndarray:
            """Whether a facet lies left of a -> b seen from outside it (its normal towards the eye)."""
            turn = np.cross(self.vectors, points[third] - points[edge_a])
            return np.einsum("ij,ij->i", turn, facet_normals[facets]) > 0

        # Seen from +n the facing facet must lie left of the directed edge (the facet facing n is
        # seen from outside, so its own orientation test applies): start at b where it does not.
        self.b_if_facet = ~left_of_edge(simplices[facet, opposite], facet)
        self.b_if_neighbour = ~left_of_edge(neighbour_third, neighbour)
        hull_index = np.zeros(len(points), dtype=np.intp)
        hull_index[hull.vertices] = np.arange(len(hull.vertices))
        self.a, self.b = hull_index[edge_a], hull_index[edge_b]
        self.facet, self.neighbour = facet, neighbour
        self.n_facets = len(simplices)

    def silhouette(self, facing: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(column, edge, start)`` of every silhouette edge of each column of ``facing``
        ((facets, c) bool: facet faces the column's normal), in edge order: the edge's index and
        the hull vertex its directed outline edge starts at."""
        n_columns = facing.shape[1]
        # (edge, normal) layout: the gathers copy whole rows
        index = np.flatnonzero(np.take(facing, self.facet, axis=0) != np.take(facing, self.neighbour, axis=0))
        edge = index // n_columns
        column = index - edge * n_columns
        facet_faces = facing.ravel()[self.facet[edge] * n_columns + column]
        start_at_b = np.where(facet_faces, self.b_if_facet[edge], self.b_if_neighbour[edge])
        return column, edge, np.where(start_at_b, self.b[edge], self.a[edge])


def _caliper_areas(n_rows: int, row: np.ndarray, start: np.ndarray, direction: np.ndarray, vertex_points: np.ndarray,
                   u_axis: np.ndarray, v_axis: np.ndarray) -> np.ndarray:
    """Lower bounds of the minimum-area rectangle of each row's projected hull, by rotating
    calipers over all rows at once (O(s log s) per row instead of the O(s^2) of
    :func:`_rectangles`).

    ``row``, ``start`` (index into ``vertex_points``) and ``direction`` (3D vector, start -> end)
    list the directed silhouette edges, in any order; ``u_axis``/``v_axis`` (n_rows, 3) are each
    row's in-plane axes with u x v = n (counter-clockwise seen from +n). The edges projected on
    the plane and sorted by angle run counter-clockwise around the projected hull; the vertex
    farthest along a direction at angle phi is then the start vertex of the first edge at an
    angle >= phi + 90 degrees (one ``searchsorted`` over all rows' sorted angles). Each width is
    the projection of the difference of two real vertices, clipped at 0, so it never exceeds the
    true width whatever rounding does to the angle order: the result is a lower bound (equal to
    the exact area in all but degenerate cases), used only to order and prune the exact search.
    Rows with fewer than 3 edges get 0.
    """
    areas = np.zeros(n_rows)
    # in-plane coordinates of each edge's direction and start vertex (1D gathers: cheaper than
    # gathering rows of (n, 3) arrays)
    origin = vertex_points[start]
    du = direction[:, 0] * u_axis[row, 0]
    dv = direction[:, 0] * v_axis[row, 0]
    su = origin[:, 0] * u_axis[row, 0]
    sv = origin[:, 0] * v_axis[row, 0]
    for k in (1, 2):
        uk, vk = u_axis[row, k], v_axis[row, k]
        du += direction[:, k] * uk
        dv += direction[:, k] * vk
        su += origin[:, k] * uk
        sv += origin[:, k] * vk
    length = np.hypot(du, dv)
    key = np.arctan2(dv, du)
    key += math.pi  # angles in [0, 2 pi]
    key += row * 8.0  # sorted by row, then angle: one sorted key array holds every row's angles
    key[length <= 1e-12] = np.inf  # edges along the normal have no direction in the plane: dropped
    order = np.argsort(key)
    order = order[:len(order) - int(np.count_nonzero(length <= 1e-12))]
    if not len(order):
        return areas
    key, row, du, dv, su, sv, length = (x[order] for x in (key, row, du, dv, su, sv, length))
    du /= length
    dv /= length
    per_row = np.bincount(row, minlength=n_rows)
    seg_end = np.cumsum(per_row)
    seg_start = (seg_end - per_row)[row]
    seg_end = seg_end[row]
    base = row * 8.0
    angle = key - base

    def support(offset: float) -> np.ndarray:
        target = angle + offset
        target[target >= 2 * math.pi] -= 2 * math.pi
        target += base
        index = np.searchsorted(key, target)
        return np.where(index >= seg_end, seg_start, index)

    hi, lo, far = support(0.5 * math.pi), support(1.5 * math.pi), support(math.pi)
    along = (su[hi] - su[lo]) * du + (sv[hi] - sv[lo]) * dv
    across = (sv[far] - sv) * du - (su[far] - su) * dv  # along the left normal (-dv, du)
    area = np.maximum(along, 0.0) * np.maximum(across, 0.0)
    first = np.flatnonzero(per_row)
    areas[first] = np.minimum.reduceat(area, (np.cumsum(per_row) - per_row)[first])
    areas[per_row < 3] = 0.0
    return areas


def oriented_minimum_bounding_box(hull: ConvexHull, chunk: int = 64) -> Tuple[float, Tuple[float, float, float]]:
    """Minimum-volume oriented bounding box ``(volume, (l1, l2, l3))`` of a convex hull.

    Searches every box with one face flush with a hull facet (the family that Chan & Tan's and
    the IBSI-suggested rotating-calipers approach explores): for a facet normal n, the box height
    is the hull's extent along n and the base is the minimum-area rectangle of the hull projected
    on the plane normal to n (exact in 2D: one side of that rectangle is collinear with an edge of
    the projected hull, and every such edge is the projection of a silhouette edge, a hull edge
    between a facet facing n and one facing away). Orienting each silhouette edge so that the
    facing facet lies on its left makes the silhouette a set of directed loops, so the edges'
    start vertices are exactly the outline vertices. Opposite normals give the same box, so each
    direction is visited once. Lower bounds prune the search: first ``height x projected hull
    area`` for every normal (cheap), then, for the normals that bound leaves in play,
    ``height x max(projected area, rotating-calipers rectangle)`` (:func:`_caliper_areas`, nearly
    exact); normals are visited by increasing bound, all of a batch's (normal, edge direction,
    outline vertex) projections in one array operation (:func:`_rectangles`), until the bound
    reaches the best volume found, so the result is the optimum over all facet orientations.
    """
    points = hull.points
    normals = np.round(hull.equations[:, :3], 9)
    # one sign per direction (first non-zero component positive): n and -n give the same box
    nonzero = normals != 0
    first = normals[np.arange(len(normals)), np.argmax(nonzero, axis=1)]
    normals[first < 0] *= -1.0
    normals = np.unique(normals, axis=0)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    facet_normals = hull.equations[:, :3]
    tri = points[hull.simplices]
    facet_areas = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    edges = _HullEdges(hull)
    vertex_points = points[hull.vertices]
    # in-plane axes (u, v) of every normal, u x v = n
    helper = np.eye(3)[np.argmin(np.abs(normals), axis=1)]
    u_axis = np.cross(normals, helper)
    u_axis /= np.linalg.norm(u_axis, axis=1, keepdims=True)
    v_axis = np.cross(normals, u_axis)

    # Heights, facing facets and shadow areas of every normal, a block of normals at a time
    # (small temporaries: fresh memory is costly; BLAS products in the calling thread).
    n_normals = len(normals)
    # blocks of normals small enough for single-threaded products with the facets and vertices
    shadow_chunk = max(1, min(chunk, _SINGLE_THREAD_GEMM // (3 * max(len(facet_normals), len(vertex_points)))))
    heights, projected = np.empty(n_normals), np.empty(n_normals)
    facing = np.empty((len(facet_normals), n_normals), dtype=bool)  # (facet, normal)
    for block in range(0, n_normals, shadow_chunk):
        ids = slice(block, min(block + shadow_chunk, n_normals))
        along_normal = _outer_dot(normals[ids], vertex_points)
        heights[ids] = along_normal.max(axis=1) - along_normal.min(axis=1)
        cosines = _outer_dot(facet_normals, normals[ids])
        np.greater(cosines, 0, out=facing[:, ids])
        projected[ids] = 0.5 * (facet_areas @ np.abs(cosines, out=cosines))
    bound = heights * projected
    counts = np.zeros(n_normals, dtype=np.intp)

    def refine(ids: np.ndarray) -> None:
        """Raise the bound of the normals ``ids`` to height x caliper rectangle."""
        row, edge, start = edges.silhouette(facing[:, ids])
        counts[ids] = np.bincount(row, minlength=len(ids))
        direction = edges.vectors[edge]
        direction[start != edges.a[edge]] *= -1.0
        caliper = _caliper_areas(len(ids), row, start, direction, vertex_points, u_axis[ids], v_axis[ids])
        bound[ids] = np.maximum(bound[ids], heights[ids] * caliper)

    best_volume, best_dims = np.inf, (0.0, 0.0, 0.0)

    def visit(ids: np.ndarray) -> None:
        """Exact boxes of the normals ``ids`` (refined); keeps the smallest."""
        nonlocal best_volume, best_dims
        flat = ids[counts[ids] < 3]
        ids = ids[counts[ids] >= 3]
        candidates = []
        if len(ids):
            # padded (normal, slot) table of silhouette edges; the padding repeats a real edge
            row, edge, outline_start = edges.silhouette(facing[:, ids])
            by_row = np.argsort(row, kind="stable")
            row, edge, outline_start = row[by_row], edge[by_row], outline_start[by_row]
            first = np.searchsorted(row, np.arange(len(ids)))
            slots = np.repeat(first[:, None], int(counts[ids].max()), axis=1)
            slots[row, np.arange(len(row)) - first[row]] = np.arange(len(row))
            candidates.append((ids, *_rectangles(normals[ids], edges.vectors[edge[slots]],
                                                 vertex_points[outline_start[slots]], counts[ids])))
        for index in flat:  # degenerate (flat) hull: the 2D hull of every vertex
            area, w1, w2 = _min_area_rectangle(np.stack([vertex_points @ u_axis[index],
                                                         vertex_points @ v_axis[index]], axis=1))
            candidates.append((np.array([index]), np.array([area]), np.array([w1]), np.array([w2])))
        for cand_ids, area, w1, w2 in candidates:
            volume = area * heights[cand_ids]
            best = int(np.argmin(volume))
            if volume[best] < best_volume:
                best_volume = float(volume[best])
                best_dims = (float(heights[cand_ids[best]]), float(w1[best]), float(w2[best]))

    def search(ids: np.ndarray) -> None:
        """Visit the refined normals ``ids`` by increasing bound until the bound reaches the best."""
        ids = ids[np.argsort(bound[ids], kind="stable")]
        start, size = 0, 4  # the caliper bounds are usually tight: the first few normals give the optimum
        while start < len(ids):
            batch = ids[start:start + size]
            start, size = start + size, chunk
            batch = batch[bound[batch] < best_volume * (1 - 1e-12)]
            if not len(batch):
                break  # bounds increase along ``ids``: no later normal can do better
            visit(batch)

    # An incumbent from the normals with the smallest shadow bounds, then the caliper bounds of
    # only those normals whose shadow bound is below it.
    order = np.argsort(bound, kind="stable")
    refine(order[:chunk])
    search(order[:chunk])
    rest = order[chunk:]
    rest = rest[bound[rest] < best_volume * (1 - 1e-12)]
    for block in range(0, len(rest), 4 * chunk):
        refine(rest[block:block + 4 * chunk])
    search(rest)
    return float(best_volume), best_dims


def maximum_diameter(points: np.ndarray) -> float:
    """Largest distance between any two points (compiled pairwise distances; pass the hull
    vertices, the only candidates)."""
    if len(points) < 2:
        return 0.0
    return math.sqrt(float(distance.pdist(points, "sqeuclidean").max()))


# ---------------------------------------------------------------------------------------------
# Spatial autocorrelation
# ---------------------------------------------------------------------------------------------
#: Largest padded grid (voxels) whose kernel spectrum :func:`moran_geary` keeps in the cache
#: (8 MB per spectrum; 8 are kept).
_CACHED_SPECTRUM_SIZE = 1 << 20
#: Complex values per grid in one slab of :func:`moran_geary`'s transforms (16 MB).
_SLAB_ELEMENTS = 1 << 20


@lru_cache(maxsize=8)
def _inverse_distance_spectrum(shape: Tuple[int, int, int], spacing_ijk: Tuple[float, float, float]) -> np.ndarray:
    """DFT of the wrapped inverse-distance kernel on an even ``shape`` (k, j, i), halved along i
    as an rfft is and weighted for :func:`moran_geary`'s Parseval sums, each value twice in a row
    to match a complex spectrum seen as (real, imaginary) floats (read-only; cached, since a
    batch sees the same box sizes and spacing again and again)."""
    half = tuple(n // 2 + 1 for n in shape)
    k, j, i = (np.arange(n, dtype=float) for n in half)
    dist = np.sqrt((i * spacing_ijk[0]) ** 2 + (j[:, None] * spacing_ijk[1]) ** 2
                   + (k[:, None, None] * spacing_ijk[2]) ** 2)
    dist[0, 0, 0] = np.inf  # w_ii = 0
    k_half = sfft.dctn(1.0 / dist, type=1)
    # K(f) = K(-f) per axis; the rfft keeps half the last axis, so mirrored frequencies count twice
    weight = np.full(half[2], 2.0 / float(np.prod(shape)))
    weight[0] = weight[-1] = 1.0 / float(np.prod(shape))
    fold = [np.minimum(np.arange(n), n - np.arange(n)) for n in shape[:2]]
    k_f = np.repeat((k_half * weight)[fold[0][:, None], fold[1][None, :], :], 2, axis=2)
    k_f.flags.writeable = False
    return k_f


def _transform_in_place(grids: np.ndarray, axis: int) -> None:
    """Fourier-transform ``grids`` (a complex view) along ``axis`` into its own memory."""
    done = sfft.fft(grids, axis=axis, overwrite_x=True)
    if not np.may_share_memory(done, grids):  # scipy gave the result in an array of its own
        grids[...] = done


def moran_geary(image: np.ndarray, mask: np.ndarray, spacing_ijk) -> Tuple[float, float]:
    r"""Moran's I [N365] and Geary's C [NPT7] over **all** pairs of intensity-mask voxels, weights
    :math:`w_{ij} = 1 / \lVert x_i - x_j \rVert` (world distance), :math:`w_{ii} = 0`:

    .. math:: I = \frac{N_v}{W}\frac{\sum_{i \ne j} w_{ij} y_i y_j}{\sum_i y_i^2},\quad
              C = \frac{N_v - 1}{2W}\frac{\sum_{i \ne j} w_{ij}(y_i - y_j)^2}{\sum_i y_i^2},

    :math:`y = X_{gl} - \mu`, :math:`W = \sum_{i \ne j} w_{ij}`. The pair sums are correlations of
    the (zero-filled) grids with the inverse-distance kernel, done by FFT convolution (the kernel
    is symmetric): :math:`\sum w y_i y_j = \sum_i y_i (K * y)_i` and
    :math:`\sum w (y_i-y_j)^2 = 2\sum_i y_i^2 (K * m)_i - 2 \sum_i y_i (K * y)_i`.
    """
    box = bounding_box(mask)
    inside = mask[box]
    x = image[box]
    n_v = int(np.count_nonzero(inside))
    if n_v < 2:
        return _NAN, _NAN
    y = np.where(inside, x - x[inside].mean(), 0.0)
    sum_y2 = float(np.einsum("ijk,ijk->", y, y))
    if sum_y2 == 0:
        return _NAN, _NAN
    # Circular correlation on a grid of >= 2n - 1 per axis equals the linear one for every pair, so
    # with the kernel stored wrapped around the origin all pair sums follow from Parseval's
    # theorem: sum_x a(x) (K * b)(x) = 1/L sum_f K(f) Re(conj(A(f)) B(f)), K(f) real.
    # An even grid size L = 2 L' per axis makes the wrapped kernel an even sequence whose DFT is
    # the type-1 DCT of its first L' + 1 samples (8 times fewer samples than the whole grid).
    shape = tuple(2 * sfft.next_fast_len(n, real=True) for n in inside.shape)
    spacing_key = tuple(float(s) for s in spacing_ijk)
    if np.prod(shape) <= _CACHED_SPECTRUM_SIZE:
        k_f = _inverse_distance_spectrum(shape, spacing_key)
    else:  # a large ROI's spectrum is not kept (it is as large as the padded grid)
        k_f = _inverse_distance_spectrum.__wrapped__(shape, spacing_key)
    # One zero-padded transform of the three grids, one axis at a time (the padding of the
    # first axes is never transformed). The transforms along k and j are independent for each
    # frequency along i, so they run on slabs of i-frequencies: memory stays a few slabs
    # instead of three whole padded grids (gigabytes for a million-voxel ROI).
    n_k, n_j, n_i = inside.shape
    grids = np.zeros((3, n_k, n_j, shape[2]))  # padded here: rfft's own padding is one more copy
    grids[0, ..., :n_i] = y
    grids[1, ..., :n_i] = inside
    np.multiply(y, y, out=grids[2, ..., :n_i])
    grids = sfft.rfft(grids, axis=3)
    slab = max(1, _SLAB_ELEMENTS // (shape[0] * shape[1]))
    sums = np.zeros(3)  # W, sum w y_i y_j, sum w y_i^2 m_j (Parseval, see above)
    for start in range(0, grids.shape[3], slab):
        stop = min(start + slab, grids.shape[3])
        # the padding written once (scipy's own padding would copy the grids for each axis)
        spectra = np.zeros((3, shape[0], shape[1], stop - start), dtype=complex)
        spectra[:, :n_k, :n_j] = grids[..., start:stop]
        _transform_in_place(spectra[:, :n_k], 2)
        _transform_in_place(spectra, 1)
        # Re(conj(a) b) = a.re b.re + a.im b.im: one pass over the (re, im) floats, no temporaries
        y_f, m_f, y2_f = spectra.view(float)
        kernel = k_f[..., 2 * start:2 * stop]
        for index, (a_f, b_f) in enumerate(((m_f, m_f), (y_f, y_f), (y2_f, m_f))):
            # einsum, not a BLAS dot: no thread start-up for a single pass over the spectra
            sums[index] += np.einsum("ijk,ijk,ijk->", kernel, a_f, b_f)
    w_total, cross, y2_m = (float(v) for v in sums)
    moran = n_v / w_total * cross / sum_y2
    geary = (n_v - 1) / (2.0 * w_total) * (2.0 * y2_m - 2.0 * cross) / sum_y2
    return float(moran), float(geary)


# ---------------------------------------------------------------------------------------------
# The family
# ---------------------------------------------------------------------------------------------
def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else _NAN


def morphology(ctx: RoiContext, wanted: Iterable[str]) -> Dict[str, float]:
    """All morphological features (see the module docstring; formulas per feature below)."""
    wanted = set(wanted)
    spacing = np.asarray(ctx.spacing, dtype=float)
    box = bounding_box(ctx.morph_mask)
    mask = ctx.morph_mask[box]
    out: Dict[str, float] = {}

    area, volume = mesh_area_volume(mask, spacing)
    out["morph_volume"] = volume  # [RNU0] mesh volume
    out["morph_vol_approx"] = float(mask.sum() * spacing.prod())  # [YEKZ] N_v * voxel volume
    out["morph_area_mesh"] = area  # [C0JK] sum of triangle areas
    out["morph_av"] = area / volume  # [2PR5] A / V
    out["morph_comp_1"] = volume / (math.sqrt(math.pi) * area**1.5)  # [SKGS] V / (pi^1/2 A^3/2)
    out["morph_comp_2"] = 36 * math.pi * volume**2 / area**3  # [BQWJ] 36 pi V^2 / A^3
    sphere_area = (36 * math.pi * volume**2) ** (1 / 3)
    out["morph_sph_dispr"] = area / sphere_area  # [KRCK] A / (36 pi V^2)^1/3
    out["morph_sphericity"] = sphere_area / area  # [QCFX] (36 pi V^2)^1/3 / A
    out["morph_asphericity"] = (area**3 / (36 * math.pi * volume**2)) ** (1 / 3) - 1  # [25C7]

    # voxel centres (mm, i j k, from the box origin) of the morphological and intensity masks
    n_voxels, centre, covariance = voxel_moments(mask, spacing)
    int_mask = ctx.int_mask[box]
    box_image = ctx.image.array[box]
    intensities = box_image[int_mask]
    if intensities.size:
        total = intensities.sum()
        com_gl = weighted_centre(np.where(int_mask, box_image, 0.0), spacing) / total if total != 0 \
            else np.full(3, np.nan)
        # [KLMA] || centre of the morphological mask - intensity-weighted centre of the intensity mask ||
        out["morph_com"] = float(np.linalg.norm(centre - com_gl))
        out["morph_integ_int"] = float(volume * intensities.mean())  # [99N0] V * mean intensity
    else:
        out["morph_com"] = out["morph_integ_int"] = _NAN

    # PCA of the voxel centres: axis lengths 4 sqrt(lambda) [TDIC, P9VJ, 7J51]
    if n_voxels > 1:
        eig = np.clip(np.sort(np.linalg.eigvalsh(covariance))[::-1], 0, None)
    else:
        eig = np.zeros(3)
    major, minor, least = (4.0 * math.sqrt(e) for e in eig)
    out["morph_pca_maj_axis"], out["morph_pca_min_axis"], out["morph_pca_least_axis"] = major, minor, least
    out["morph_pca_elongation"] = math.sqrt(eig[1] / eig[0]) if eig[0] > 0 else _NAN  # [Q3CK]
    out["morph_pca_flatness"] = math.sqrt(eig[2] / eig[0]) if eig[0] > 0 else _NAN  # [N17B]

    # approximate enclosing ellipsoid, semi-axes 2 sqrt(lambda) [6BDE, RDD2]
    a, b, c = (2.0 * math.sqrt(e) for e in eig)
    out["morph_vol_dens_aee"] = _ratio(volume, 4.0 / 3.0 * math.pi * a * b * c)
    out["morph_area_dens_aee"] = _ratio(area, ellipsoid_area_ibsi(a, b, c)) if c > 0 else _NAN

    vertices = mesh_vertices(mask, spacing, hull_candidates=True)  # same hull and bounding box
    hull = ConvexHull(vertices)
    hull_points = vertices[hull.vertices]
    dims = np.ptp(hull_points, axis=0)  # the hull's vertices span the same box as all vertices
    out["morph_vol_dens_aabb"] = volume / float(dims.prod())  # [PBX1] V / V_aabb
    out["morph_area_dens_aabb"] = area / float(2 * (dims[0] * dims[1] + dims[1] * dims[2] + dims[0] * dims[2]))

    out["morph_diam"] = maximum_diameter(hull_points)  # [L0JK] on hull vertices
    out["morph_vol_dens_conv_hull"] = volume / hull.volume  # [R3ER]
    out["morph_area_dens_conv_hull"] = area / hull.area  # [7T7F]

    if wanted & {"morph_vol_dens_ombb", "morph_area_dens_ombb"}:
        box_volume, (l1, l2, l3) = oriented_minimum_bounding_box(hull)
        out["morph_vol_dens_ombb"] = volume / box_volume  # [ZH1A]
        out["morph_area_dens_ombb"] = area / (2 * (l1 * l2 + l2 * l3 + l1 * l3))  # [IQYR]
    if wanted & {"morph_vol_dens_mvee", "morph_area_dens_mvee"}:
        _, (ea, eb, ec) = minimum_volume_enclosing_ellipsoid(hull_points)
        out["morph_vol_dens_mvee"] = volume / (4.0 / 3.0 * math.pi * ea * eb * ec)  # [SWZ1]
        out["morph_area_dens_mvee"] = area / ellipsoid_area_ibsi(ea, eb, ec)  # [BRI8]

    if wanted & {"morph_moran_i", "morph_geary_c"}:
        if int_mask.any():
            out["morph_moran_i"], out["morph_geary_c"] = moran_geary(ctx.image.array[box], int_mask, spacing)
        else:
            out["morph_moran_i"] = out["morph_geary_c"] = _NAN
    return out


#: Moran's I and Geary's C: they need neither the mesh nor the hull, so they may be computed
#: apart from the rest (e.g. in another thread, see ``engine.pipeline``).
AUTOCORRELATION_TAGS = ("morph_moran_i", "morph_geary_c")


def compute(ctx: RoiContext, tags: Iterable[str]) -> Dict[str, float]:
    """Requested morphological features of the ROI."""
    wanted = list(tags)
    if set(wanted) <= set(AUTOCORRELATION_TAGS):
        box = bounding_box(ctx.morph_mask)
        int_mask = ctx.int_mask[box]
        if not int_mask.any():
            return {tag: _NAN for tag in wanted}
        values = dict(zip(AUTOCORRELATION_TAGS, moran_geary(ctx.image.array[box], int_mask,
                                                            np.asarray(ctx.spacing, dtype=float))))
    else:
        values = morphology(ctx, wanted)
    return {tag: values[tag] for tag in wanted}
