"""Print the IBSI-1 conformance table: matched / total reference values per configuration and
feature family (and the diagnostics), using Testing/ibsi_support.py.

Run from the repository root: ``.venv/bin/python scripts/ibsi_conformance.py``
(``--failures`` also lists every value that does not match).
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "PySERASlicer"))
sys.path.insert(0, str(ROOT / "Testing"))

from ibsi_support import diagnostic_rows, matches, reference_rows, run_configuration  # noqa: E402


def main(argv=None) -> int:
    show_failures = "--failures" in (argv if argv is not None else sys.argv[1:])
    table = defaultdict(lambda: [0, 0])
    failures = []
    configurations = []
    for row in reference_rows() + [dict(r, feature_family="diagnostics") for r in diagnostic_rows()]:
        config, family, tag = row["configuration"], row["feature_family"], row["feature_tag"]
        if config not in configurations:
            configurations.append(config)
        values = run_configuration(config)
        value = values.get(tag, float("nan"))
        ok = matches(value, float(row["reference_value"]), float(row["tolerance"]))
        table[(config, family)][0] += ok
        table[(config, family)][1] += 1
        if not ok:
            failures.append(f"{config:16s} {tag:40s} computed {value!r} vs {row['reference_value']} "
                            f"+/- {row['tolerance']}")
    families = sorted({family for _, family in table}, key=lambda f: (f == "diagnostics", f))
    width = max(len(f) for f in families)
    print(f"{'family':{width}s}  " + "  ".join(f"{c:>16s}" for c in configurations))
    totals = defaultdict(lambda: [0, 0])
    for family in families:
        cells = []
        for config in configurations:
            matched, total = table.get((config, family), (0, 0))
            totals[config][0] += matched
            totals[config][1] += total
            cells.append(f"{matched:>7d} / {total:<6d}" if total else f"{'-':>16s}")
        print(f"{family:{width}s}  " + "  ".join(cells))
    print(f"{'all':{width}s}  " + "  ".join(f"{totals[c][0]:>7d} / {totals[c][1]:<6d}" for c in configurations))
    if show_failures and failures:
        print("\nNot matching:")
        print("\n".join(failures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
