"""Print the IBSI-2 phase 1 table: for each test id with a consensus response map, the filter, the
largest deviation of our map from the consensus map over the tolerance (1 % of the map's range),
whether it passes, and the seconds taken (reading the phantom, filtering, comparing); the last
line is ``phase 1: N/33 response maps``.

Run from the repository root: ``.venv/bin/python scripts/ibsi2_conformance.py``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "PySERASlicer"))
sys.path.insert(0, str(ROOT / "Testing"))

from ibsi2_support import PHASE1, compare, reference_map  # noqa: E402


def main() -> int:
    import scipy.fft  # noqa: F401  (imports and the reference archive are not timed)
    import scipy.ndimage  # noqa: F401

    reference_map(PHASE1[0].test_id)
    print(f"{'id':7s} {'filter':42s} {'max deviation / tolerance':>27s}  {'pass':4s} {'seconds':>7s}")
    passed = 0
    for case in PHASE1:
        start = time.perf_counter()
        result = compare(case)
        seconds = time.perf_counter() - start
        passed += result.passed
        print(f"{case.test_id:7s} {result.label:42s} {result.deviation:>12.4g} / {result.tolerance:<12.4g}  "
              f"{'yes' if result.passed else 'NO':4s} {seconds:7.2f}")
    print(f"phase 1: {passed}/{len(PHASE1)} response maps")
    return 0 if passed == len(PHASE1) else 1


if __name__ == "__main__":
    raise SystemExit(main())
