"""The ``mage_ai`` names Mage 0.9.80 ships that dagsmith does not implement (yet).

Block code that imports one of them must not die on a bare ``ModuleNotFoundError``:

- ``mage_ai.io.<connector>`` modules (MySQL, Snowflake, Redshift, …) import, and their
  classes raise :class:`~dagsmith.errors.NotAvailableInDagsmith` when constructed or
  configured (``MySQL.with_config(...)``), so a block that imports a connector it never
  uses still runs, and one that uses it fails naming the connector (the block boundary
  adds the block and the file:line);
- other Mage modules that block templates import (streaming sources and sinks) behave the
  same way;
- any other ``mage_ai.*`` module imports as an empty stub; taking a name from it
  (``from mage_ai.shared.hash import index_by``) raises
  :class:`~dagsmith.errors.MageNameUnavailable` (an ``ImportError``) naming it.

docs/compatibility.md has the full table of supported, partial and missing names.
"""

from __future__ import annotations

import types
from typing import Any

from dagsmith.errors import MageNameUnavailable, NotAvailableInDagsmith

#: ``mage_ai.io`` modules of Mage 0.9.80 without a dagsmith connector → their public classes.
IO_CONNECTORS: dict[str, tuple[str, ...]] = {
    "airtable": ("Airtable",),
    "algolia": ("Algolia",),
    "azure_blob_storage": ("AzureBlobStorage",),
    "backblaze_b2": ("BackblazeB2",),
    "chroma": ("Chroma",),
    "clickhouse": ("ClickHouse",),
    "druid": ("Druid",),
    "google_sheets": ("GoogleSheets",),
    "mongodb": ("MongoDB",),
    "mssql": ("MSSQL",),
    "mysql": ("MySQL",),
    "oracledb": ("OracleDB",),
    "pinot": ("Pinot",),
    "qdrant": ("Qdrant",),
    "redshift": ("Redshift",),
    "snowflake": ("Snowflake",),
    "spark": ("Spark",),
    "trino": ("Trino",),
    "weaviate": ("Weaviate",),
}

#: Other Mage modules that block templates import → their public names.
OTHER_MODULES: dict[str, tuple[str, ...]] = {
    "mage_ai.streaming.sources.base_python": ("BasePythonSource",),
    "mage_ai.streaming.sinks.base_python": ("BasePythonSink",),
}

_DOCS = "see docs/compatibility.md for what dagsmith supports"


def _stub_names() -> dict[str, tuple[str, ...]]:
    names = {f"mage_ai.io.{m}": classes for m, classes in IO_CONNECTORS.items()}
    names.update(OTHER_MODULES)
    return names


def unavailable_name(qualified: str) -> MageNameUnavailable:
    return MageNameUnavailable(f"{qualified} is not available in dagsmith (yet)", name=qualified, hint=_DOCS)


def _refuse(qualified: str) -> NotAvailableInDagsmith:
    connector = qualified.startswith("mage_ai.io.")
    what = "connector" if connector else "name"
    return NotAvailableInDagsmith(
        f"{qualified} is not available in dagsmith (yet): dagsmith has no such {what}",
        hint=(
            "dagsmith's connectors are PostgreSQL, DuckDB, BigQuery, GCS, S3 and files; "
            "use the system's own Python client in the block meanwhile, or " + _DOCS
        )
        if connector
        else _DOCS,
    )


class _UnavailableType(type):
    """Metaclass of a placeholder class: calling it or reading an attribute raises."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        raise _refuse(cls._qualified)

    def __getattr__(cls, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise _refuse(cls._qualified)


def _placeholder(module: str, name: str) -> type:
    return _UnavailableType(name, (), {"_qualified": f"{module}.{name}", "__module__": module})


def fill_stub_module(module: types.ModuleType, fullname: str) -> None:
    """Populate a stub package created by the import finder for a Mage name dagsmith lacks.

    Known Mage classes become placeholders that raise when used; taking any other name
    from the module raises ``MageNameUnavailable`` naming it.
    """
    module.__path__ = []  # a package, so deeper names resolve (to stubs) too
    module.__doc__ = f"{fullname}: not available in dagsmith (yet); {_DOCS}."
    for name in _stub_names().get(fullname, ()):
        setattr(module, name, _placeholder(fullname, name))

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise unavailable_name(f"{fullname}.{name}")

    module.__getattr__ = __getattr__  # type: ignore[attr-defined]
