"""The Excel report a reader opens: column widths, frozen header and ids, a closing INFO row in the
Report, and the Feature_Definitions sheet (read back with openpyxl)."""

from __future__ import annotations

import openpyxl
from batch_fixtures import write_case
from PySERASlicerLib import process_batch
from PySERASlicerLib.engine.registry import specs_by_tag


def test_sheets_are_sized_frozen_and_closed_with_a_summary_row(tmp_path):
    write_case(tmp_path, "p1", 0)
    write_case(tmp_path, "p2", 1)
    result = process_batch(str(tmp_path / "images"), str(tmp_path / "masks"), str(tmp_path / "out"),
                           categories="stat,glcm", dimensions="1st,3d", enable_parallelism=False, roi_num=1)
    assert result["success"] and result["failed_files"] == 0
    book = openpyxl.load_workbook(result["excel_path"])
    assert book.sheetnames == ["Radiomics_Features", "Parameters", "Report", "Feature_Definitions"]

    features = book["Radiomics_Features"]
    assert features.freeze_panes == "C2"  # header row and PatientID, ROI stay in view
    header = [c.value for c in features[1]]
    for index, name in enumerate(header, start=1):
        width = features.column_dimensions[openpyxl.utils.get_column_letter(index)].width
        assert width >= len(name), name  # no header is cut

    parameters = book["Parameters"]
    assert parameters.freeze_panes == "A2"
    keys = [row[1] for row in parameters.iter_rows(min_row=2, values_only=True)]
    assert "IBSI_based_parameters.radiomics_ReSegIntrvl01" in keys
    assert parameters.column_dimensions["B"].width >= len("IBSI_based_parameters.radiomics_ReSegIntrvl01")

    report = list(book["Report"].iter_rows(min_row=2, values_only=True))
    assert book["Report"].freeze_panes == "A2"
    level, message = report[-1][2], report[-1][3]
    n_features = len(header) - 2
    assert level == "INFO"
    assert message.startswith(f"run finished: 2 case(s), 2 ROI(s), {n_features} feature(s) per ROI, ")
    assert message.endswith(" s")
    assert all(row[2] != "ERROR" for row in report)

    definitions = book["Feature_Definitions"]
    assert [c.value for c in definitions[1]] == ["Column", "IBSI tag", "PySERA name", "IBSI name", "IBSI code",
                                                "Family", "Aggregation"]
    rows = {row[0]: row for row in definitions.iter_rows(min_row=2, values_only=True)}
    assert list(rows) == header[2:]  # one row per feature column, in column order
    for column, row in rows.items():
        spec = specs_by_tag()[column]
        assert row[1:] == (spec.tag, spec.pysera_tag, spec.name, spec.code, spec.family, spec.aggregation_name)
    assert rows["stat_mean"][3:5] == ("Mean intensity", "Q4LE")


def test_a_failed_case_is_counted_in_the_closing_row(tmp_path):
    write_case(tmp_path, "p1", 0)
    (tmp_path / "images" / "orphan.nii.gz").write_bytes((tmp_path / "images" / "p1.nii.gz").read_bytes())
    result = process_batch(str(tmp_path / "images"), str(tmp_path / "masks"), str(tmp_path / "out"),
                           categories="stat", enable_parallelism=False)
    assert result["failed_files"] == 1 and "orphan: No matching mask found" in result["error"]
    report = list(openpyxl.load_workbook(result["excel_path"])["Report"].iter_rows(min_row=2, values_only=True))
    assert report[-1][3].startswith("run finished: 2 case(s), 1 failed, 2 ROI(s)")


def test_the_streamed_workbook_holds_what_pandas_to_excel_would_write(tmp_path):
    """write_workbook streams the cells itself (pandas' to_excel styled every cell first, a
    third of a small case's batch time): the values read back are those pandas writes, the
    header is bold and the panes frozen."""
    import numpy as np
    import pandas as pd
    from PySERASlicerLib.export import write_workbook

    frame = pd.DataFrame({
        "PatientID": ["p1", "p2", "p3", "p4"], "ROI": ["a", "b", None, "d"],
        "value": [1.5, np.nan, np.inf, -np.inf], "count": np.array([1, 2, 3, 4], dtype=np.int64),
        "flag": [True, False, True, False],
        "mixed": [np.float64(2.5), np.int32(7), "text", float("nan")],
        "big": [1e300, -0.0, 1e-300, 123456789.123],
    })
    ours, theirs = tmp_path / "ours.xlsx", tmp_path / "pandas.xlsx"
    write_workbook(ours, {"Sheet": (frame, "C2")})
    frame.to_excel(theirs, sheet_name="Sheet", index=False)
    read = [list(openpyxl.load_workbook(p)["Sheet"].iter_rows(values_only=True)) for p in (ours, theirs)]
    assert read[0] == read[1]
    sheet = openpyxl.load_workbook(ours)["Sheet"]
    assert sheet.freeze_panes == "C2" and sheet["A1"].font.b
    assert sheet.column_dimensions["B"].width >= 8 and sheet.column_dimensions["F"].width >= len("text")
