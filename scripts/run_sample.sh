#!/usr/bin/env bash
# The main job: a headless extraction of all 557 PySERA features on the bundled IBSI CT
# phantom (lung lesion GTV-1), written as an Excel report (+ CSV, + provenance JSON) into
# ./sample_output.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_env.sh
DATA=Testing/Data/ibsi/ibsi_1_ct_radiomics_phantom/nifti
.venv/bin/pysera-slicer extract \
  --image "$DATA/image/phantom.nii.gz" \
  --mask "$DATA/mask/mask.nii.gz" \
  --output sample_output \
  --preset ct --categories all --dimensions all
