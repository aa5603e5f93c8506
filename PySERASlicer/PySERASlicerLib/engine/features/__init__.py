"""Feature families, one module per PySERA category (see ``engine.registry``)."""
