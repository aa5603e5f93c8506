"""Pure numpy/scipy radiomics engine: IBSI processing chain, feature families, registry.

Never imports slicer, qt, pandas or torch at module level.
"""
