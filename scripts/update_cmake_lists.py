"""Regenerate PySERASlicer/CMakeLists.txt from its template: every .py of PySERASlicerLib and
every resource file. Run after adding a module: `python scripts/update_cmake_lists.py`."""

from __future__ import annotations

from pathlib import Path

MODULE = Path(__file__).resolve().parents[1] / "PySERASlicer"


def listed_files():
    scripts = sorted(p.relative_to(MODULE).as_posix() for p in (MODULE / "PySERASlicerLib").rglob("*.py")
                     if "__pycache__" not in p.parts)
    resources = sorted(p.relative_to(MODULE).as_posix() for p in (MODULE / "Resources").rglob("*")
                       if p.is_file())
    resources += sorted(p.relative_to(MODULE).as_posix() for p in (MODULE / "PySERASlicerLib").rglob("*.json"))
    return scripts, resources


def render() -> str:
    scripts, resources = listed_files()
    template = (MODULE / "CMakeLists.txt.in").read_text()
    return (template.replace("@PYTHON_SCRIPTS@", "\n".join(f"  {s}" for s in scripts))
            .replace("@PYTHON_RESOURCES@", "\n".join(f"  {r}" for r in resources)))


if __name__ == "__main__":
    (MODULE / "CMakeLists.txt").write_text(render())
    print(f"wrote {MODULE / 'CMakeLists.txt'}")
