"""docs/ibsi_configurations.md: every documented PySERA dict equals its preset."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PySERASlicerLib.settings import Settings, preset_settings

DOC = Path(__file__).resolve().parents[1] / "docs" / "ibsi_configurations.md"
BLOCKS = re.findall(r"^## (\S+)\n\n```json\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S | re.M)


def test_every_ibsi_preset_is_documented():
    assert {name for name, _ in BLOCKS} == {"digital_phantom", "ibsi_A", "ibsi_B", "ibsi_C", "ibsi_D", "ibsi_E"}


@pytest.mark.parametrize("name,block", BLOCKS, ids=[name for name, _ in BLOCKS])
def test_documented_pysera_keys_give_the_preset(name, block):
    assert Settings.from_pysera(**json.loads(block)) == preset_settings(name)
