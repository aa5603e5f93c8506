"""PET SUV body weight from the DICOM tags of pydicom-written PET series (decay correction START
and ADMIN, Units GML, Philips CNTS, missing weight), and the switch that turns it off."""

from __future__ import annotations

import numpy as np
import pytest
from clinical_dicom_fixtures import PET_TAGS, RADIOPHARMACEUTICAL, write_enhanced_pet, write_pet_series
from PySERASlicerLib.io.readers import read_image
from PySERASlicerLib.io.suv import apply_suv
from PySERASlicerLib.settings import Settings, SettingsError

SHAPE = (6, 10, 12)
#: 70 kg, 370 MBq of F-18 (half-life 6586.2 s) one hour before the series start
START_FACTOR = 70_000.0 / (370e6 * 2.0 ** (-3600.0 / 6586.2))


def _stored(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(100, 30000, SHAPE).astype(np.int16)


def _read(folder):
    warnings = []
    image = read_image(folder, warnings=warnings)
    return image, warnings


def test_decay_corrected_to_series_start(tmp_path):
    stored = _stored()
    write_pet_series(tmp_path / "pet", stored, slope=0.5)
    image, _ = _read(tmp_path / "pet")
    assert image.modality == "PET"
    assert image.pet_suv.factor == pytest.approx(START_FACTOR, rel=1e-12)
    suv, note = apply_suv(image, enabled=True)
    np.testing.assert_allclose(suv.array, stored * 0.5 * START_FACTOR, rtol=1e-12)
    assert f"factor {START_FACTOR:.6g}" in note and "(START)" in note and "3600 s after the injection" in note
    for tag in ("PatientWeight 70", "RadionuclideTotalDose 370000000", "RadionuclideHalfLife 6586.2",
                "RadiopharmaceuticalStartTime 100000", "SeriesTime 110000"):
        assert tag in note
    assert suv.pet_suv is None and apply_suv(suv, enabled=True) == (suv, None)  # never converted twice


def test_series_time_after_the_acquisition_uses_the_acquisition_start(tmp_path):
    """A post-processed series (series time 12:30) keeps the decay reference of its acquisition (11:00)."""
    write_pet_series(tmp_path / "pet", _stored(), tags={**PET_TAGS, "SeriesTime": "123000"})
    image, _ = _read(tmp_path / "pet")
    assert image.pet_suv.factor == pytest.approx(START_FACTOR, rel=1e-12)


def test_injection_date_time_across_midnight(tmp_path):
    """Injected 23:30 the day before a 00:30 series: one hour of decay."""
    drug = {**RADIOPHARMACEUTICAL, "RadiopharmaceuticalStartTime": None,
            "RadiopharmaceuticalStartDateTime": "20240104233000"}
    write_pet_series(tmp_path / "pet", _stored(), radiopharmaceutical=drug,
                     tags={**PET_TAGS, "SeriesTime": "003000", "AcquisitionTime": "003000"})
    image, _ = _read(tmp_path / "pet")
    assert image.pet_suv.factor == pytest.approx(START_FACTOR, rel=1e-12)


def test_decay_corrected_to_the_injection(tmp_path):
    write_pet_series(tmp_path / "pet", _stored(), tags={**PET_TAGS, "DecayCorrection": "ADMIN"})
    image, _ = _read(tmp_path / "pet")
    assert image.pet_suv.factor == pytest.approx(70_000.0 / 370e6, rel=1e-12)
    assert "(ADMIN)" in image.pet_suv.method


def test_units_gml_are_already_suv(tmp_path):
    stored = _stored()
    write_pet_series(tmp_path / "pet", stored, tags={**PET_TAGS, "Units": "GML", "PatientWeight": None},
                     slope=0.001)
    image, _ = _read(tmp_path / "pet")
    suv, note = apply_suv(image, enabled=True)
    assert image.pet_suv.factor == 1.0 and "already SUV" in note
    np.testing.assert_allclose(suv.array, stored * 0.001, rtol=1e-12)


def test_philips_counts_with_the_suv_scale_factor(tmp_path):
    stored = _stored()
    private = {(0x7053, 0x0010): ("LO", "Philips PET Private Group"), (0x7053, 0x1000): ("DS", "0.000412")}
    write_pet_series(tmp_path / "pet", stored, tags={**PET_TAGS, "Units": "CNTS", "PatientWeight": None},
                     private=private)
    image, _ = _read(tmp_path / "pet")
    suv, note = apply_suv(image, enabled=True)
    assert image.pet_suv.factor == pytest.approx(0.000412, rel=1e-12)
    assert "(7053,1000)" in note
    np.testing.assert_allclose(suv.array, stored * 0.000412, rtol=1e-12)


def test_philips_scale_factor_stored_as_unknown_vr(tmp_path):
    """Files without the private creator's dictionary keep (7053,1000) as raw bytes (VR UN)."""
    write_pet_series(tmp_path / "pet", _stored(), tags={**PET_TAGS, "Units": "CNTS", "PatientWeight": None},
                     private={(0x7053, 0x1000): ("UN", b"0.000412")})
    image, _ = _read(tmp_path / "pet")
    assert image.pet_suv.factor == pytest.approx(0.000412, rel=1e-12)


def test_philips_counts_with_the_activity_concentration_scale_factor(tmp_path):
    """Without (7053,1000): CNTS x (7053,1009) = Bq/ml, then the usual decay-corrected SUV."""
    private = {(0x7053, 0x0010): ("LO", "Philips PET Private Group"), (0x7053, 0x1009): ("DS", "2.5")}
    write_pet_series(tmp_path / "pet", _stored(), tags={**PET_TAGS, "Units": "CNTS"}, private=private)
    image, _ = _read(tmp_path / "pet")
    assert image.pet_suv.factor == pytest.approx(2.5 * START_FACTOR, rel=1e-12)


def test_missing_weight_is_a_warning_naming_the_tag_and_keeps_the_stored_values(tmp_path):
    stored = _stored()
    write_pet_series(tmp_path / "pet", stored, tags={**PET_TAGS, "PatientWeight": None})
    image, _ = _read(tmp_path / "pet")
    assert image.pet_suv.factor is None and image.pet_suv.missing == ("PatientWeight (0010,1030)",)
    warnings = []
    same, note = apply_suv(image, enabled=True, warnings=warnings)
    assert same is image and note is None
    assert len(warnings) == 1 and "PET SUV not computed" in warnings[0]
    assert "missing PatientWeight (0010,1030)" in warnings[0] and "stored values" in warnings[0]
    np.testing.assert_array_equal(same.array, stored)


def test_missing_dose_and_half_life_are_all_named(tmp_path):
    drug = {"RadiopharmaceuticalStartTime": "100000", "RadionuclideTotalDose": None, "RadionuclideHalfLife": None}
    write_pet_series(tmp_path / "pet", _stored(), radiopharmaceutical=drug)
    image, _ = _read(tmp_path / "pet")
    assert image.pet_suv.missing == ("RadionuclideTotalDose (0018,1074)", "RadionuclideHalfLife (0018,1075)")


def test_switched_off_keeps_the_stored_values_and_says_so(tmp_path):
    stored = _stored()
    write_pet_series(tmp_path / "pet", stored)
    image, _ = _read(tmp_path / "pet")
    same, note = apply_suv(image, enabled=False)
    np.testing.assert_array_equal(same.array, stored)
    assert "switched off" in note


def test_ct_series_carry_no_conversion(tmp_path):
    from dicom_fixtures import write_series

    write_series(tmp_path / "ct", _stored())
    image, _ = _read(tmp_path / "ct")
    assert image.pet_suv is None and apply_suv(image, enabled=True) == (image, None)


def test_settings_switch_pysera_key_and_own_name():
    assert Settings().pet_suv is True
    assert Settings.from_pysera(IBSI_based_parameters={"radiomics_SUV": 0}).pet_suv is False
    assert Settings.from_dict({"pet_suv": False}).pet_suv is False
    with pytest.raises(SettingsError, match="pet_suv"):
        Settings(pet_suv="yes")


def test_enhanced_pet_decay_corrected_to_the_earliest_frame(tmp_path):
    """Series time 12:30 after the acquisition: the decay reference is the earliest frame's
    FrameAcquisitionDateTime (11:00), as for a series of single-frame files."""
    stored = _stored()
    tags = {key: PET_TAGS[key] for key in ("Units", "DecayCorrection", "PatientWeight", "SeriesDate")}
    write_enhanced_pet(tmp_path / "pet.dcm", stored, {**tags, "SeriesTime": "123000"})
    image, _ = _read(tmp_path / "pet.dcm")
    assert image.modality == "PET"
    assert image.pet_suv.factor == pytest.approx(START_FACTOR, rel=1e-12)
    suv, note = apply_suv(image, enabled=True)
    np.testing.assert_allclose(suv.array, stored * 0.5 * START_FACTOR, rtol=1e-12)
    assert "FrameAcquisitionDateTime 20240105110000" in note and "3600 s after the injection" in note


@pytest.mark.parametrize("corrected_to", [None, "20240105110000"])
def test_enhanced_pet_tags_rescale_type_and_decay_corrected(tmp_path, corrected_to):
    """The Enhanced PET spelling: unit as RescaleType, DecayCorrected YES (with or without the
    DecayCorrectionDateTime), radiopharmaceutical in the shared functional group."""
    tags = {"PatientWeight": "70", "SeriesDate": "20240105", "SeriesTime": "123000", "DecayCorrected": "YES"}
    if corrected_to:
        tags["DecayCorrectionDateTime"] = corrected_to
    write_enhanced_pet(tmp_path / "pet.dcm", _stored(), tags, drug_in_shared_group=True)
    image, _ = _read(tmp_path / "pet.dcm")
    assert image.pet_suv.factor == pytest.approx(START_FACTOR, rel=1e-12), image.pet_suv.describe()
    assert image.pet_suv.tags["RescaleType"] == "BQML"
