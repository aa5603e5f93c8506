"""Run log with PySERA's report levels: each level keeps itself and the more severe ones."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from .settings import ReportLevel

LOGGER = logging.getLogger("PySERASlicerLib")
# A library never prints on its own: without this, Python's last-resort handler writes each
# WARNING/ERROR to stderr, and the CLI, which reports errors itself, showed each one twice.
LOGGER.addHandler(logging.NullHandler())

#: Severity order; "all" and "info" both keep INFO and above (PySERA maps both to INFO).
_SEVERITY = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}
_THRESHOLD = {
    ReportLevel.ALL: 10,
    ReportLevel.INFO: 20,
    ReportLevel.WARNING: 30,
    ReportLevel.ERROR: 40,
    ReportLevel.NONE: 100,
}


@dataclass
class ReportEntry:
    """One row of the Excel ``Report`` sheet."""

    patient_id: str
    roi: str
    level: str
    message: str

    def as_row(self) -> Dict[str, str]:
        return {"PatientID": self.patient_id, "ROI": self.roi, "Level": self.level, "Message": self.message}


@dataclass
class RunLog:
    """Collects log lines (filtered by the report level) and Report rows.

    Report rows of level WARNING and ERROR are always kept in the Excel ``Report`` sheet
    (a failed case must never disappear), but ``logs`` and the console follow ``level``.
    """

    level: ReportLevel = ReportLevel.ALL
    lines: List[str] = field(default_factory=list)
    entries: List[ReportEntry] = field(default_factory=list)

    def keeps(self, severity: str) -> bool:
        return _SEVERITY[severity] >= _THRESHOLD[self.level]

    def log(self, severity: str, message: str, patient_id: str = "", roi: str = "",
            report: Optional[bool] = None) -> None:
        if report if report is not None else severity in ("WARNING", "ERROR"):
            self.entries.append(ReportEntry(patient_id, roi, severity, message))
        if self.keeps(severity):
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            self.lines.append(f"{stamp} - {severity} - {message}")
            LOGGER.log(_SEVERITY[severity], message)

    def info(self, message: str, patient_id: str = "", roi: str = "") -> None:
        self.log("INFO", message, patient_id, roi)

    def warning(self, message: str, patient_id: str = "", roi: str = "") -> None:
        self.log("WARNING", message, patient_id, roi)

    def error(self, message: str, patient_id: str = "", roi: str = "") -> None:
        self.log("ERROR", message, patient_id, roi)
