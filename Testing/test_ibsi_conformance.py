"""IBSI-1 conformance: every reference value of the digital phantom and configurations A, B.

Parametrised over the rows of Testing/Data/ibsi/ibsi1_reference_values.csv (ids
``configuration-feature_tag``); each configuration is extracted once (cached).
"""

from __future__ import annotations

import pytest
from ibsi_support import diagnostic_rows, matches, reference_rows, round_sig, run_configuration
from PySERASlicerLib.engine.registry import specs_by_tag

ROWS = reference_rows()


@pytest.mark.parametrize("row", ROWS, ids=[f"{r['configuration']}-{r['feature_tag']}" for r in ROWS])
def test_reference_value(row):
    values = run_configuration(row["configuration"])
    tag = row["feature_tag"]
    assert tag in values, f"{tag} is not computed"
    value = values[tag]
    reference, tolerance = float(row["reference_value"]), float(row["tolerance"])
    assert matches(value, reference, tolerance), (
        f"{tag}: computed {value!r} (rounded {round_sig(value)}) vs reference {reference} +/- {tolerance}"
    )


DIAGNOSTICS = diagnostic_rows()


@pytest.mark.parametrize("row", DIAGNOSTICS, ids=[f"{r['configuration']}-{r['feature_tag']}" for r in DIAGNOSTICS])
def test_diagnostic_value(row):
    values = run_configuration(row["configuration"])
    tag = row["feature_tag"]
    assert tag in values, f"{tag} is not computed"
    reference, tolerance = float(row["reference_value"]), float(row["tolerance"])
    assert matches(values[tag], reference, tolerance), f"{tag}: {values[tag]!r} vs {reference} +/- {tolerance}"


def test_every_reference_tag_is_registered():
    registered = specs_by_tag()
    missing = sorted({r["feature_tag"] for r in ROWS + DIAGNOSTICS} - set(registered))
    assert not missing, f"reference tags without a registry entry: {missing}"
