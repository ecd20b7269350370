"""DuckDB catalog: the record of what every stage did (connection, migrations, reads and writes)."""

from musicdata.catalog.connection import Catalog, CatalogError, QueryRefused

__all__ = ["Catalog", "CatalogError", "QueryRefused"]
