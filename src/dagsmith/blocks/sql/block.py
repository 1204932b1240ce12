"""Running one SQL block: configuration, template context, upstream tables, mode, output, errors.

See the package docstring (``dagsmith.blocks.sql``) for the rules users see.
"""

from __future__ import annotations

import datetime as _dt
import json as _json
import math as _math
import os
import re
from dataclasses import dataclass
from typing import Any, Mapping

from dagsmith.blocks.context import BlockCall
from dagsmith.blocks.sql.dialects import DatabaseFailure, Dialect, WriteOptions, open_dialect
from dagsmith.blocks.sql.render import (
    Secret,
    SqlText,
    display_params,
    display_sql,
    render_template,
    split_and_bind,
)
from dagsmith.data.serde import is_frame
from dagsmith.errors import BlockError, ConfigError, ConnectorError, DagsmithError
from dagsmith.util.values import truthy

POLICIES = ("append", "replace", "fail", "replace_partition")
PREVIEW_ROWS = 10
_MISSING = object()


@dataclass(frozen=True)
class SqlSettings:
    provider: str
    profile: str
    database: str | None
    schema: str | None
    table: str | None
    policy: str
    raw: bool
    verbatim: bool
    limit: int
    on_schema_change: str = "fail"
    partition_column: str | None = None
    partition_value: str | None = None


def _where(call: BlockCall) -> str:
    return f"block '{call.block.uuid}' ({call.block.relpath})"


def settings_for(call: BlockCall, config: Mapping[str, Any], context: Mapping[str, Any]) -> SqlSettings:
    """The block's SQL settings, with templated values rendered."""
    provider = config.get("data_provider")
    if not provider:
        raise ConfigError(
            f"{_where(call)} has no data_provider",
            hint="set configuration.data_provider to postgres, duckdb or bigquery in the pipeline's metadata.yaml",
        )

    def text(key: str) -> str | None:
        value = config.get(key)
        if value in (None, ""):
            return None
        value = str(value)
        if "{{" in value or "{%" in value:
            try:
                value = render_template(value, context, filename=key, params=False).text.strip()
            except Exception as exc:
                raise ConfigError(f"{_where(call)}: cannot render {key} {config.get(key)!r}: {exc}") from None
        return value or None

    policy = str(config.get("export_write_policy") or "append").lower()
    if policy not in POLICIES:
        raise ConfigError(
            f"{_where(call)}: export_write_policy {config.get('export_write_policy')!r} is not a write policy",
            hint="use append, replace, fail or replace_partition",
        )
    from dagsmith.io.schema import on_schema_change_setting

    schema_change = on_schema_change_setting(
        config.get("on_schema_change") or "fail", where=f"{_where(call)}: on_schema_change"
    )
    if policy == "replace_partition" and not config.get("partition_column"):
        raise ConfigError(
            f"{_where(call)}: export_write_policy replace_partition needs partition_column",
            hint="set configuration.partition_column (and optionally partition_value, default: the run's interval)",
        )
    limit_value = config.get("limit_in_pipeline_run") or config.get("limit") or 0
    try:
        limit = int(limit_value)
    except (TypeError, ValueError):
        raise ConfigError(f"{_where(call)}: limit {limit_value!r} is not a number") from None
    from dagsmith.io.base import QUERY_ROW_LIMIT

    return SqlSettings(
        provider=str(provider).lower(),
        profile=text("data_provider_profile") or "default",
        database=text("data_provider_database"),
        schema=text("data_provider_schema"),
        table=text("data_provider_table"),
        policy=policy,
        raw=truthy(config.get("use_raw_sql")),
        verbatim=truthy(config.get("disable_query_preprocessing")),
        limit=min(limit, QUERY_ROW_LIMIT) if limit > 0 else QUERY_ROW_LIMIT,
        on_schema_change=schema_change,
        partition_column=text("partition_column"),
        partition_value=text("partition_value"),
    )


def auto_table(pipeline_uuid: str, block_uuid: str) -> str:
    """Mage's table name for a block: ``<pipeline>_<block>_v1`` (no ``dev_`` prefix)."""
    return f"{pipeline_uuid}_{block_uuid}_v1".replace(":", "_")


class _Tables:
    """Resolves ``df_N`` / ``block_output('uuid')`` to quoted table names, loading frames on first use."""

    def __init__(self, call: BlockCall, s: SqlSettings, dialect: Dialect, schema: str, context: Mapping[str, Any]):
        self.call, self.s, self.dialect, self.schema, self.context = call, s, dialect, schema, context
        self.done: dict[str, SqlText] = {}
        self.loaded: list[str] = []

    def _configured(self, up: str) -> bool:
        cfg = (self.call.block.configuration.get("upstream_block_configuration") or {}).get(up) or {}
        return bool(cfg.get("table_name"))

    def _target_of(self, up: str) -> tuple[str, str]:
        cfg = (self.call.block.configuration.get("upstream_block_configuration") or {}).get(up) or {}
        name = cfg.get("table_name")
        if name:
            name = str(name)
            if "." in name:
                schema, _, table = name.rpartition(".")
                return schema, table
            return self.schema, name
        return self.schema, auto_table(self.call.pipeline.uuid, up)

    def _sql_upstream_table(self, up: str) -> SqlText | None:
        """A materialized SQL upstream on the same database is referenced where it is."""
        spec = self.call.pipeline.block_map().get(up)
        if spec is None or not spec.is_sql:
            return None
        try:
            other = settings_for(self.call, spec.configuration, self.context)
        except DagsmithError:
            return None
        if other.raw or other.verbatim:
            return None
        if (other.provider, other.profile, other.database) != (self.s.provider, self.s.profile, self.s.database):
            return None
        schema = other.schema or self.dialect.default_schema
        if not schema:
            return None
        return self.dialect.qualify(schema, other.table or auto_table(self.call.pipeline.uuid, up))

    def table(self, up: str, value: Any = _MISSING) -> SqlText:
        if up in self.done:
            return self.done[up]
        ref = self._sql_upstream_table(up)
        if ref is None:
            if value is _MISSING:
                value = self._value(up)
            schema, table = self._target_of(up)
            if not schema:
                raise ConfigError(
                    f"{_where(self.call)}: no schema to load upstream '{up}' into",
                    hint="set data_provider_schema (the BigQuery dataset) in the block's configuration",
                )
            ref = self.dialect.load_frame(_as_frame(value, up, self.call), schema, table, persist=self._configured(up))
            self.loaded.append(str(ref))
        self.done[up] = ref
        return ref

    def _value(self, up: str) -> Any:
        upstreams = list(self.call.block.upstream_blocks)
        if up in upstreams:
            idx = upstreams.index(up)
            if idx < len(self.call.inputs):
                return self.call.inputs[idx]
        if self.call.upstream_lookup is None:
            raise ConfigError(f"{_where(self.call)}: the output of block '{up}' is not available")
        try:
            return self.call.upstream_lookup(up)
        except DagsmithError:
            raise
        except Exception as exc:
            raise ConfigError(
                f"{_where(self.call)}: block_output({up!r}): block '{up}' has no stored output ({exc})",
                hint=f"run '{up}' first, or add it to the block's upstream blocks",
            ) from None


class _LazyTable:
    """What ``df_N`` is in the template: resolved (and loaded) only when rendered."""

    def __init__(self, tables: _Tables, up: str) -> None:
        self.tables, self.up = tables, up

    def __sql__(self) -> SqlText:
        return self.tables.table(self.up)

    def __str__(self) -> str:
        return str(self.__sql__())


def _as_frame(value: Any, up: str, call: BlockCall) -> Any:
    import pandas as pd

    if isinstance(value, list) and value and all(is_frame(v) for v in value):
        value = value[0]  # a block with several outputs: its first frame
    if is_frame(value):
        return value
    if isinstance(value, Mapping) or (isinstance(value, list) and all(isinstance(v, Mapping) for v in value)):
        return pd.DataFrame(value if isinstance(value, list) else dict(value))
    raise ConfigError(
        f"{_where(call)}: upstream '{up}' returned a {type(value).__name__}, which cannot be loaded as a table",
        hint="return a DataFrame (pandas, polars or Arrow) from that block",
    )


def _context(call: BlockCall, tables: _Tables | None) -> dict[str, Any]:
    from dagsmith.project.io_config import get_secret_value

    kwargs = dict(call.kwargs)
    ctx: dict[str, Any] = {k: v for k, v in kwargs.items() if isinstance(k, str) and k.isidentifier()}
    user_vars = dict(kwargs)

    def variables(name: str, default: Any = _MISSING) -> Any:
        if name in user_vars:
            return user_vars[name]
        if default is not _MISSING:
            return default
        raise ConfigError(f"variables({name!r}): no variable named {name!r}", hint="pass it with --var or set it in the pipeline")

    def env_var(name: str, default: Any = _MISSING) -> Any:
        if name in os.environ:
            return os.environ[name]
        if default is not _MISSING:
            return default
        raise ConfigError(f"env_var({name!r}): environment variable {name!r} is not set", hint="set it, or in the project's .env")

    def secret(name: str) -> Secret:
        return Secret(get_secret_value(name))

    def json_value(value: Any, key: Any = None) -> Any:
        from dagsmith.project.io_config import _json_value

        return _json_value(value, key)

    def ident(*parts: Any) -> SqlText:
        quote = tables.dialect.quote if tables is not None else (lambda p: '"' + str(p).replace('"', '""') + '"')
        return SqlText(".".join(quote(p) for p in parts))

    def raw(text: Any) -> SqlText:
        return SqlText(str(text))

    ctx.update(
        variables=variables,
        env_var=env_var,
        secret=secret,
        mage_secret_var=secret,
        json_value=json_value,
        datetime=_dt,
        json=_json,
        math=_math,
        ident=ident,
        raw=raw,
    )
    if tables is not None:
        for i, up in enumerate(call.block.upstream_blocks, start=1):
            ctx[f"df_{i}"] = _LazyTable(tables, up)

        def block_output(block_uuid: str, parse: Any = None) -> Any:
            if parse is None:
                return tables.table(block_uuid)
            value = tables._value(block_uuid)
            return parse(value, dict(call.kwargs))

        ctx["block_output"] = block_output
    return ctx


def _template_line(exc: BaseException, filename: str) -> int | None:
    lineno = getattr(exc, "lineno", None)
    if lineno:
        return int(lineno)
    tb = exc.__traceback__
    found = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename in ("<template>", filename):
            found = tb.tb_lineno
        tb = tb.tb_next
    return found


def _render_error(call: BlockCall, exc: BaseException) -> BlockError:
    import jinja2

    line = _template_line(exc, str(call.block.path))
    loc = f"{call.block.path}:{line}" if line else str(call.block.path)
    if isinstance(exc, jinja2.UndefinedError):
        what = f"{exc.message}: no variable, upstream or helper has that name"
        hint = "pass it as a variable (--var name=value), or fix the name; df_N counts upstream blocks from 1"
    elif isinstance(exc, jinja2.TemplateSyntaxError):
        what = f"template syntax error: {exc.message}"
        hint = "check the {{ }} / {% %} tags on that line"
    elif isinstance(exc, DagsmithError):
        what, hint = exc.message, exc.hint
    else:
        what, hint = f"{type(exc).__name__}: {exc}", None
    where = f" line {line}" if line else ""
    return BlockError(f"{_where(call)}{where}: cannot render the SQL template: {what}", block_uuid=call.block.uuid, location=loc, hint=hint)


def _db_error(call: BlockCall, s: SqlSettings, failure: DatabaseFailure, rendered: str) -> BlockError:
    line = failure.rendered_line
    lines = rendered.splitlines()
    where = ""
    if line and 1 <= line <= len(lines):
        where = f" at line {line} of the rendered SQL ({lines[line - 1].strip()!r})"
    loc = f"{call.block.path}:{line}" if line else str(call.block.path)
    return BlockError(
        f"{_where(call)}: {s.provider} rejected the SQL{where}: {failure.message}",
        block_uuid=call.block.uuid,
        location=loc,
        hint="the rendered SQL is shown with the run (dagsmith run … --block); values appear as bind placeholders",
    )


def _preview(frame: Any) -> str:
    try:
        return frame.head(PREVIEW_ROWS).to_string(max_colwidth=40)
    except Exception:
        return repr(frame)[:2000]


def run_sql_block(call: BlockCall) -> Any:
    """Run a SQL block (see the package docstring); returns the output frame or None."""
    config = call.block.configuration
    base_ctx = _context(call, None)
    s = settings_for(call, config, base_ctx)
    source = call.block.path.read_text(encoding="utf-8")
    call.extra["sql_provider"] = s.provider
    call.extra["sql_profile"] = s.profile
    try:
        dialect = open_dialect(s.provider, call.project_root, s.profile, s.database)
    except DagsmithError as exc:
        raise BlockError(f"{_where(call)}: {exc.message}", block_uuid=call.block.uuid, hint=exc.hint) from None
    try:
        if s.verbatim:
            call.extra["rendered_sql"] = source
            try:
                dialect.execute_verbatim(source)
            except DatabaseFailure as failure:
                raise _db_error(call, s, failure, source) from None
            return None
        schema = s.schema or dialect.default_schema
        tables = _Tables(call, s, dialect, schema, base_ctx)
        ctx = _context(call, tables)
        try:
            rendered = render_template(_python_block_outputs(source, ctx), ctx, filename=str(call.block.path))
        except BlockError:
            raise
        except Exception as exc:
            if isinstance(exc, DagsmithError) and not _is_template_error(exc):
                # a connector failed while loading an upstream: keep its message, name the block
                raise BlockError(f"{_where(call)}: {exc.message}", block_uuid=call.block.uuid, hint=exc.hint) from None
            raise _render_error(call, exc) from None
        statements = split_and_bind(rendered, dialect=dialect.name, split=True)
        shown = display_sql(statements, dialect.placeholder)
        call.extra["rendered_sql"] = shown
        call.extra["sql_params"] = display_params(statements, dialect.placeholder)
        if tables.loaded:
            call.extra["sql_loaded_tables"] = list(tables.loaded)
        if not statements:
            raise BlockError(f"{_where(call)}: the SQL is empty after rendering", block_uuid=call.block.uuid)
        try:
            if s.raw or (len(statements) == 1 and not _is_query(statements[0])):
                # raw mode, or one statement that is not a query (DDL/DML): run it as written
                frame = dialect.run_raw(statements)
            elif not schema and len(statements) == 1:
                # No schema (BigQuery dataset) to materialize into: run the query and return its
                # rows. The course's connection test (`SELECT 1;` on a profile without a dataset)
                # works this way; Mage 0.9.80 writes into a dataset literally named "None".
                frame = dialect.run_raw(statements)
            else:
                if len(statements) > 1:
                    raise BlockError(
                        f"{_where(call)} holds {len(statements)} statements; a materialized block runs one query",
                        block_uuid=call.block.uuid,
                        hint="keep one SELECT, or set use_raw_sql: true to run the statements as written",
                    )
                if not schema:
                    raise ConfigError(
                        f"{_where(call)}: no schema (dataset) for the result table",
                        hint="set data_provider_schema in the block's configuration",
                    )
                table = s.table or auto_table(call.pipeline.uuid, call.block.uuid)
                options = WriteOptions(
                    on_schema_change=s.on_schema_change,
                    partition_column=s.partition_column,
                    partition_value=s.partition_value,
                    variables=call.kwargs,
                )
                dialect.materialize(statements[0], schema, table, s.policy, options)
                call.extra["table"] = f"{schema}.{table}"
                frame = dialect.read_table(schema, table, s.limit)
        except DatabaseFailure as failure:
            raise _db_error(call, s, failure, shown) from None
        except (ConnectorError, ConfigError) as exc:  # drift, a row outside the partition: nothing was written
            raise BlockError(f"{_where(call)}: {exc.message}", block_uuid=call.block.uuid, hint=exc.hint) from None
        if frame is not None:
            call.extra["preview"] = _preview(frame)
            call.extra["preview_rows"] = int(len(frame))
        return frame
    finally:
        dialect.close()


_BLOCK_OUTPUT = re.compile(r"\{\{\s*(block_output\s*\(.*?\))\s*\}\}", re.S)


def _python_block_outputs(source: str, ctx: dict[str, Any]) -> str:
    """``{{ block_output('x', parse=lambda data, variables: …) }}`` is Python (as in Mage), not Jinja:
    evaluate each call now and leave a Jinja name holding its value (line numbers kept)."""
    if "block_output" not in source:
        return source

    def repl(m: "re.Match[str]") -> str:
        name = f"__block_output_{len([k for k in ctx if k.startswith('__block_output_')])}"
        ctx[name] = eval(m.group(1), {"__builtins__": __builtins__}, dict(ctx))  # the user's own code, like a Python block
        return "{{ " + name + " }}" + "\n" * m.group(0).count("\n")

    return _BLOCK_OUTPUT.sub(repl, source)


_QUERY_RE = re.compile(r"^\s*(?:--[^\n]*\n\s*|/\*.*?\*/\s*)*\(*\s*(select|with|values|table|from)\b", re.I | re.S)


def _is_query(stmt: Any) -> bool:
    return bool(_QUERY_RE.match("".join(p for p in stmt.pieces if isinstance(p, str))))


def _is_template_error(exc: BaseException) -> bool:
    return isinstance(exc, ConfigError) and ("variables(" in exc.message or "env_var(" in exc.message)
