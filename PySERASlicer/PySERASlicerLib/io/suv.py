r"""PET standardised uptake value, body weight (SUVbw), from the DICOM tags of a PET series.

:math:`SUV_{bw} = C \cdot W / D`: the activity concentration :math:`C` (Bq/ml, the stored
values after rescale) times the patient weight :math:`W` (g) over the injected dose :math:`D`
(Bq) decayed to the time the image is decay-corrected to, following the vendor-neutral QIBA
recipe:

* ``Units`` = ``BQML`` and ``DecayCorrection`` = ``START``: the dose decays from the injection
  (``RadiopharmaceuticalStartDateTime``, else ``SeriesDate`` + ``RadiopharmaceuticalStartTime``)
  to the series start (``SeriesDate``/``SeriesTime``; the earliest ``AcquisitionDate``/
  ``AcquisitionTime`` of the slices when the series time is later, as post-processed series
  have), :math:`D = D_0 \, 2^{-\Delta t / T_{1/2}}` (``RadionuclideTotalDose``,
  ``RadionuclideHalfLife``);
* ``DecayCorrection`` = ``ADMIN``: the image is decay-corrected to the injection, :math:`D = D_0`;
* ``Units`` = ``GML``: the values are already SUVbw (factor 1);
* ``Units`` = ``CNTS`` (Philips): the private SUV scale factor (7053,1000) gives SUVbw directly;
  without it the activity concentration scale factor (7053,1009) gives Bq/ml first.

Enhanced PET files (one file, many frames) carry the same values elsewhere, and are read from
there when the classic tag is absent: the unit as the Pixel Value Transformation's
``RescaleType``, the decay correction as ``DecayCorrected`` = ``YES`` with, where given, the
``DecayCorrectionDateTime`` the frames are corrected to (else the series start, as START), the
radiopharmaceutical in the shared functional group, and the acquisition start as the earliest
``FrameAcquisitionDateTime`` of the frames.

A series whose tags do not allow the conversion keeps its stored values, and the reason names
the missing tags (:attr:`SuvConversion.missing`). The conversion is computed by the DICOM series
reader (:func:`conversion_from_headers`) and applied, unless switched off, by :func:`apply_suv`.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

#: Tag keyword -> "(gggg,eeee)" for the messages.
TAG_NUMBERS = {
    "Units": "(0054,1001)", "DecayCorrection": "(0054,1102)", "PatientWeight": "(0010,1030)",
    "RadionuclideTotalDose": "(0018,1074)", "RadionuclideHalfLife": "(0018,1075)",
    "RadiopharmaceuticalStartTime": "(0018,1072)", "RadiopharmaceuticalStartDateTime": "(0018,1078)",
    "SeriesDate": "(0008,0021)", "SeriesTime": "(0008,0031)", "AcquisitionTime": "(0008,0032)",
    "RescaleType": "(0028,1054)", "DecayCorrected": "(0018,9758)", "DecayCorrectionDateTime": "(0018,9701)",
    "FrameAcquisitionDateTime": "(0018,9074)",
    "PhilipsSUVScaleFactor": "(7053,1000)", "PhilipsActivityConcentrationScaleFactor": "(7053,1009)",
}
_PHILIPS_SUV = (0x7053, 0x1000)
_PHILIPS_BQML = (0x7053, 0x1009)


@dataclass(frozen=True)
class SuvConversion:
    """How a PET series' stored values become SUVbw.

    factor : multiply the stored values (after rescale) by this to get SUVbw (g/ml); None when
        the tags do not allow the conversion.
    method : how the factor was found, or why there is none.
    tags : the tag values used (keyword -> value as written in the file).
    missing : tags that were needed but are absent or unusable, as ``Keyword (gggg,eeee)``.
    """

    factor: Optional[float]
    method: str
    tags: Dict[str, str] = field(default_factory=dict)
    missing: Tuple[str, ...] = ()

    def describe(self) -> str:
        """One Report line: the factor (or the reason there is none) and the tags used."""
        used = ", ".join(f"{k} {v}" for k, v in self.tags.items())
        if self.factor is None:
            missing = f"; missing {', '.join(self.missing)}" if self.missing else ""
            return f"PET SUV not computed ({self.method}{missing}); features use the stored values"
        return f"PET converted to SUV body weight: factor {self.factor:.6g} ({self.method}; {used})"


def _text(dataset, keyword) -> Optional[str]:
    value = dataset.get(keyword) if dataset is not None else None
    if value is None:
        return None
    if hasattr(value, "value"):  # a DataElement (private tags are looked up by number)
        value = value.value
    if isinstance(value, bytes):  # a private DS read as UN (implicit VR, unknown creator): ASCII digits
        value = value.decode("ascii", "ignore").strip("\x00 ")
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = "\\".join(str(v) for v in value)
    text = str(value).strip()
    return text or None


def _number(text: Optional[str]) -> Optional[float]:
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def _datetime(date: Optional[str], time: Optional[str]) -> Optional[dt.datetime]:
    """DICOM DA + TM (``HHMMSS.ffffff``, seconds and fraction optional) -> datetime."""
    if not date or not time:
        return None
    time = time.replace(":", "")
    try:
        day = dt.datetime.strptime(date.strip()[:8], "%Y%m%d")
        hours, minutes = int(time[0:2]), int(time[2:4] or 0)
        seconds = float(time[4:] or 0)
    except ValueError:
        return None
    return day + dt.timedelta(hours=hours, minutes=minutes, seconds=seconds)


def _datetime_tag(text: Optional[str]) -> Optional[dt.datetime]:
    """DICOM DT (``YYYYMMDDHHMMSS.ffffff``, time zone ignored) -> datetime."""
    if not text or len(text) < 12:
        return None
    return _datetime(text[:8], text[8:].split("+")[0].split("-")[0])


def _functional_group_item(dataset, sequence_keyword: str):
    """The item of ``sequence_keyword`` in an enhanced file's shared functional group, else in
    its first frame's (the values SUV needs are the same for all frames); None elsewhere."""
    for groups in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        group_sequence = dataset.get(groups) if dataset is not None else None
        sequence = group_sequence[0].get(sequence_keyword) if group_sequence else None
        if sequence:
            return sequence[0]
    return None


def _frame_acquisitions(dataset) -> List[str]:
    """The ``FrameAcquisitionDateTime`` of every frame of an enhanced file (none elsewhere)."""
    times = []
    for item in dataset.get("PerFrameFunctionalGroupsSequence") or ():
        content = item.get("FrameContentSequence")
        text = _text(content[0], "FrameAcquisitionDateTime") if content else None
        if text:
            times.append(text)
    return times


def conversion_from_headers(headers: Sequence) -> SuvConversion:
    """The SUVbw conversion of a PET series from its files' pydicom headers (first file for the
    series tags, all files, and all frames of enhanced files, for the earliest acquisition
    time)."""
    first = headers[0]
    drug_sequence = first.get("RadiopharmaceuticalInformationSequence")
    drug = (drug_sequence[0] if drug_sequence else
            _functional_group_item(first, "RadiopharmaceuticalInformationSequence"))
    units = (_text(first, "Units") or "").upper()
    tags: Dict[str, str] = {"Units": units or "?"}
    if not units:  # enhanced PET: the unit is the Pixel Value Transformation's rescale type
        units = (_text(_functional_group_item(first, "PixelValueTransformationSequence"), "RescaleType") or "").upper()
        tags = {"RescaleType": units} if units else tags

    def need(owner, keyword: str, missing: List[str]) -> Optional[str]:
        text = _text(owner, keyword)
        if text is None:
            missing.append(f"{keyword} {TAG_NUMBERS[keyword]}")
        else:
            tags[keyword] = text
        return text

    if units == "GML":
        return SuvConversion(1.0, "Units GML: already SUV body weight", tags)
    scale = 1.0
    if units == "CNTS":
        suv_scale = _number(_text(first, _PHILIPS_SUV))
        if suv_scale is not None and suv_scale > 0:
            tags["PhilipsSUVScaleFactor"] = f"{suv_scale:g}"
            return SuvConversion(suv_scale, "Units CNTS: Philips SUV scale factor (7053,1000)", tags)
        bqml_scale = _number(_text(first, _PHILIPS_BQML))
        if bqml_scale is None or bqml_scale <= 0:
            return SuvConversion(None, "Units CNTS without Philips scale factors", tags,
                                 (f"PhilipsSUVScaleFactor {TAG_NUMBERS['PhilipsSUVScaleFactor']}",
                                  f"PhilipsActivityConcentrationScaleFactor "
                                  f"{TAG_NUMBERS['PhilipsActivityConcentrationScaleFactor']}"))
        tags["PhilipsActivityConcentrationScaleFactor"] = f"{bqml_scale:g}"
        scale = bqml_scale
    elif units != "BQML":
        return SuvConversion(None, f"Units {units or 'absent'}: not BQML, GML or CNTS", tags,
                             () if units else (f"Units {TAG_NUMBERS['Units']}",))

    missing: List[str] = []
    weight = _number(need(first, "PatientWeight", missing))
    dose = _number(need(drug, "RadionuclideTotalDose", missing))
    correction = (_text(first, "DecayCorrection") or "").upper()
    corrected_to = None
    if correction:
        tags["DecayCorrection"] = correction
    elif _text(first, "DecayCorrected"):  # enhanced PET: YES/NO and, optionally, the reference time
        decay_corrected = need(first, "DecayCorrected", missing).upper()
        corrected_to = _datetime_tag(need(first, "DecayCorrectionDateTime", [])) if decay_corrected == "YES" else None
        correction = "START" if decay_corrected == "YES" else "NONE"
    else:
        missing.append(f"DecayCorrection {TAG_NUMBERS['DecayCorrection']}")
    if correction == "ADMIN":
        decayed_fraction, how = 1.0, "decay-corrected to the injection (ADMIN)"
    elif correction == "START":
        half_life = _number(need(drug, "RadionuclideHalfLife", missing))
        injection = _datetime_tag(_text(drug, "RadiopharmaceuticalStartDateTime"))
        if injection is not None:
            tags["RadiopharmaceuticalStartDateTime"] = _text(drug, "RadiopharmaceuticalStartDateTime")
        series_date = need(first, "SeriesDate", missing)
        series = corrected_to or _datetime(series_date, need(first, "SeriesTime", missing))
        if injection is None:
            injection = _datetime(series_date, need(drug, "RadiopharmaceuticalStartTime", missing))
        acquisitions = [a for a in (_datetime(_text(h, "AcquisitionDate") or series_date, _text(h, "AcquisitionTime"))
                                    for h in headers) if a is not None]
        frame_starts = [a for a in (_datetime_tag(t) for h in headers for t in _frame_acquisitions(h))
                        if a is not None]
        if corrected_to is None and series is not None and frame_starts and min(frame_starts) < series:
            series = min(frame_starts)  # an enhanced file: the earliest frame is the acquisition start
            tags["FrameAcquisitionDateTime"] = series.strftime("%Y%m%d%H%M%S")
        elif corrected_to is None and series is not None and acquisitions and min(acquisitions) < series:
            series = min(acquisitions)  # series time after the acquisition: a post-processed series
            tags["AcquisitionTime"] = series.strftime("%H%M%S")
        decayed_fraction, how = None, ("decay-corrected to the series start (START)" if corrected_to is None else
                                       "decay-corrected to DecayCorrectionDateTime")
        if half_life is not None and half_life > 0 and injection is not None and series is not None:
            seconds = (series - injection).total_seconds()
            if seconds < 0 and "RadiopharmaceuticalStartDateTime" not in tags:
                seconds += 86400.0  # injected before midnight, scanned after
            decayed_fraction = 2.0 ** (-seconds / half_life)
            how += f", {seconds:g} s after the injection"
    else:
        return SuvConversion(None, f"DecayCorrection {correction or 'absent'}: not START or ADMIN", tags,
                             tuple(missing))
    if missing or weight is None or dose is None or decayed_fraction is None or weight <= 0 or dose <= 0:
        unusable = [f"{k} {TAG_NUMBERS[k]}" for k, v in (("PatientWeight", weight), ("RadionuclideTotalDose", dose))
                    if v is not None and v <= 0]
        return SuvConversion(None, f"Units {units}, {how}", tags, tuple(missing + unusable))
    factor = scale * weight * 1000.0 / (dose * decayed_fraction)
    return SuvConversion(factor, f"Units {units}, {how}", tags)


def apply_suv(image, enabled: bool, warnings: Optional[List[str]] = None):
    """``(image, note)``: ``image`` in SUVbw when it carries a usable conversion and ``enabled``,
    else unchanged; ``note`` is the Report line (None when there is nothing to say). A PET image
    whose tags do not allow the conversion adds a warning naming the missing tags."""
    import numpy as np

    conversion = getattr(image, "pet_suv", None)
    if conversion is None:
        return image, None
    if not enabled:
        return image, "PET SUV conversion switched off (pet_suv = False); features use the stored values"
    if conversion.factor is None:
        if warnings is not None:
            warnings.append(f"{image.source or 'PET image'}: {conversion.describe()}")
        return image, None
    # pet_suv=None: the values are SUV now, a second call must not convert them again
    array = np.asarray(image.array, dtype=np.float64) * conversion.factor
    return image.with_array(array, pet_suv=None), conversion.describe()
