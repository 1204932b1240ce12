"""``mage_ai.io.base``: re-exports, plus Mage's ``DataSource`` and ``FileFormat`` name lists."""

from enum import Enum

from dagsmith.io.base import QUERY_ROW_LIMIT, ExportWritePolicy
from dagsmith.io.base import Connector as BaseIO

# Mage's base classes, for type hints and isinstance checks in user code: one base here
BaseFile = BaseSQLDatabase = BaseSQLConnection = BaseIO


class DataSource(str, Enum):
    """The data source names of Mage 0.9.80 (block configuration values)."""

    AIRTABLE = "airtable"
    ALGOLIA = "algolia"
    API = "api"
    BIGQUERY = "bigquery"
    CHROMA = "chroma"
    CLICKHOUSE = "clickhouse"
    DRUID = "druid"
    DUCKDB = "duckdb"
    FILE = "file"
    GOOGLE_CLOUD_STORAGE = "google_cloud_storage"
    GOOGLE_SHEETS = "google_sheets"
    KAFKA = "kafka"
    MYSQL = "mysql"
    MSSQL = "sqlserver"
    OPENSEARCH = "opensearch"
    PINOT = "pinot"
    POSTGRES = "postgres"
    QDRANT = "qdrant"
    REDSHIFT = "redshift"
    S3 = "s3"
    SNOWFLAKE = "snowflake"
    SPARK = "spark"
    TRINO = "trino"
    WEAVIATE = "weaviate"


class FileFormat(str, Enum):
    """File formats ``FileIO``/GCS/S3 accept as ``format=`` (strings work too)."""

    CSV = "csv"
    JSON = "json"
    PARQUET = "parquet"
    HDF5 = "hdf5"
    XML = "xml"
    EXCEL = "excel"


__all__ = ["QUERY_ROW_LIMIT", "BaseFile", "BaseIO", "BaseSQLConnection", "BaseSQLDatabase", "DataSource", "ExportWritePolicy", "FileFormat"]
