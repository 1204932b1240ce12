"""SQL blocks: render the block's Jinja template, run it on its data provider, return the result frame.

Owns running a ``.sql`` block of any type (Mage's SQL blocks; MAGE_REFERENCE §4).

Configuration (block ``configuration`` in the pipeline's metadata.yaml):
``data_provider`` (postgres | duckdb | bigquery), ``data_provider_profile``
(io_config.yaml profile, may be templated: ``{{ variables('P') }}``),
``data_provider_database`` (PostgreSQL database, BigQuery project, DuckDB
catalog), ``data_provider_schema``, ``data_provider_table``,
``export_write_policy`` (append — Mage's default — | replace | fail |
replace_partition), ``partition_column`` / ``partition_value`` (replace_partition;
the value may be templated, default: the run's interval), ``on_schema_change``
(fail | add_columns), ``use_raw_sql``, ``disable_query_preprocessing``, ``limit`` /
``limit_in_pipeline_run`` (rows of the block's output frame; 0 = up to 10M),
``upstream_block_configuration.<uuid>.table_name``.

Templating (Jinja, strict: an unknown name fails the block and names it):
``{{ df_1 }}`` … ``{{ df_N }}`` (the N-th upstream, 1-based) and
``{{ block_output('uuid') }}`` are tables; runtime variables by name
(``{{ execution_date }}``, ``{{ ds }}``, ``interval_*``, pipeline and run
variables, ``env``), ``variables('x')``, ``env_var('X')``,
``mage_secret_var('x')`` / ``secret('x')``, ``json_value``, ``datetime``,
``json``, ``math``. ``block_output('uuid', parse=lambda data, variables: …)``
gives the value ``parse`` returns.

The parameter rule (no user data is ever concatenated into SQL):

- helpers that name a table (``df_N``, ``block_output('uuid')``) render
  double-quoted (BigQuery: back-quoted) qualified identifiers;
- every other ``{{ expr }}`` is a *value*: it reaches the database as a bound
  parameter (``$1`` on PostgreSQL/DuckDB, ``@p1`` on BigQuery) with its Python
  type (datetime, int, …). ``'{{ ds }}'`` (a whole quoted literal) binds the
  value as text, ``'{{ ds }}%'`` binds it inside a ``||`` concatenation, lists
  expand to ``$1, $2, …`` (for ``IN (…)``); ``{{ … }}`` in a ``--`` comment is
  left as written (so a comment never loads a table or fails on a name);
- to put a computed *name* in the SQL, say so: ``{{ ident(x) }}`` quotes it as
  an identifier, ``{{ raw(x) }}`` writes it verbatim (your responsibility).

Modes:

- materialize (default): the query becomes ``<schema>.<table>`` (table:
  ``data_provider_table`` or ``<pipeline>_<block>_v1``; Mage's ``dev_`` prefix for
  editor runs is not applied) per the write policy — replace builds the new table
  aside and swaps it in one transaction (DuckDB: ``CREATE OR REPLACE`` in a
  transaction; BigQuery: ``WRITE_TRUNCATE``), so readers never see an empty table.
  ``append`` and ``replace_partition`` first compare the result's columns with the
  table's (added, missing or changed columns stop the block, nothing written, unless
  ``on_schema_change: add_columns``); ``replace_partition`` puts the result aside,
  refuses rows outside the partition, then deletes the partition and inserts the
  result in one transaction (BigQuery: one MERGE), so a re-run gives the same rows.
  The output is the table's rows (``limit``). With no schema configured (a BigQuery
  profile without a dataset) a single query is run as it is and its rows are the output.
- raw (``use_raw_sql``): statements run as written, in one transaction
  (PostgreSQL, DuckDB; BigQuery runs them one by one); the output is the last
  statement's rows, or for a last ``CREATE TABLE … AS`` / ``INSERT INTO`` the first
  1,000 rows of that table, else nothing.
- ``disable_query_preprocessing``: the file is sent verbatim (no Jinja, no
  splitting, no parameters); no output.

A non-SQL upstream referenced by ``df_N`` / ``block_output`` is first written
to ``<schema>.<pipeline>_<upstream>_v1`` (or its configured ``table_name``)
with replace semantics through the connector's fast path (COPY / ADBC on
PostgreSQL, a load job on BigQuery). On DuckDB the frame is handed over
zero-copy instead: its Arrow buffers are registered as a temporary view of that
name on the block's connection (``temp.main."<pipeline>_<upstream>_v1"``), so
nothing is copied or written to the warehouse file; a configured ``table_name``
asks for a persisted table and gets one (connector export, replace). A
materialized SQL upstream on the same provider, profile and database is
referenced in place.

``call.extra`` receives ``rendered_sql``, ``sql_params``, ``table``, ``preview``
(first rows as text) for the CLI and the UI. Errors are ``BlockError``s naming
the block, the file and the rendered SQL line the database rejected, with the
database's own message.
"""

from __future__ import annotations

from dagsmith.blocks.sql.block import run_sql_block

__all__ = ["run_sql_block"]
