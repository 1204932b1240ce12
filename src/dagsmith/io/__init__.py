"""Connectors: one module per system behind one small interface (see ``dagsmith.io.base``).

Nothing heavy is imported here; use ``dagsmith.io.registry.get_connector_class(name)``
or import the module of the system you need (``dagsmith.io.postgres`` …).
"""
