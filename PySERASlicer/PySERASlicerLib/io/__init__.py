"""Readers: files, folders, DICOM, RTSTRUCT, SEG and NumPy inputs -> Image."""
