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
