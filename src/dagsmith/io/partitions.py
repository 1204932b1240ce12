"""``if_exists='replace_partition'``: which rows one run owns, for every target.

A partition is a column and either one value (``column = value``) or a half-open
range (``low <= column < high``). :func:`resolve_partition` builds it from the
export call (or the SQL block's configuration):

- ``partition_value=v`` — that value (strings are parsed as the column's type:
  ``'2021-01-05'`` for a date column);
- ``partition_value=(low, high)`` — that range;
- no value — the running block's interval, ``interval_start_datetime`` ≤ column <
  ``interval_end_datetime`` (for scheduled and backfill runs: the execution date
  truncated to the trigger's interval, up to the next one), as dates for a date
  column and as times for a timestamp column (naive columns compare with the
  interval's wall-clock time in the trigger's time zone).

Every target then does the same three things with it: refuse a frame with rows
outside the partition (they would be written by this run but not replaced by
its re-run), delete the partition's rows, insert the frame — atomically.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

from dagsmith.errors import ConfigError, TerminalConnectorError
from dagsmith.util.clock import parse_iso

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa


@dataclass(frozen=True)
class Partition:
    """``column = low`` (``high`` None) or ``low <= column < high``, with values typed for the column."""

    column: str
    low: Any
    high: Any = None

    @property
    def is_range(self) -> bool:
        return self.high is not None

    def describe(self) -> str:
        if self.is_range:
            return f"{self.column} in [{_show(self.low)}, {_show(self.high)})"
        return f"{self.column} = {_show(self.low)}"

    def sql(self, column_sql: str, placeholder: Callable[[int], str], first: int = 1) -> tuple[str, list[Any]]:
        """A WHERE condition with bound values (``placeholder(n)`` spells parameter n)."""
        if self.is_range:
            return (
                f"{column_sql} >= {placeholder(first)} AND {column_sql} < {placeholder(first + 1)}",
                [self.low, self.high],
            )
        return f"{column_sql} = {placeholder(first)}", [self.low]

    def mask(self, array: Any) -> Any:
        """A boolean array: True where the value is in the partition (nulls are not)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
        if pa.types.is_dictionary(array.type):
            array = array.cast(array.type.value_type)
        t = array.type
        if pa.types.is_null(t):  # no typed values (an empty or all-null column): none is inside
            return pa.array([False] * len(array), pa.bool_())
        low = _arrow_scalar(self.low, t)
        if self.is_range:
            inside = pc.and_(pc.greater_equal(array, low), pc.less(array, _arrow_scalar(self.high, t)))
        else:
            inside = pc.equal(array, low)
        return pc.fill_null(inside, False)

    def contains_text(self, text: str, arrow_type: "pa.DataType") -> bool:
        """Whether a value written as text (a hive path segment) is in the partition."""
        import pyarrow as pa

        if arrow_type is None or pa.types.is_null(_plain(arrow_type)):
            arrow_type = pa.scalar(self.low).type  # an empty frame: the partition value's own type
        try:
            value = pa.array([text]).cast(_plain(arrow_type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return False
        return bool(self.mask(value)[0].as_py())


def partition_settings(column: str | None, value: Any) -> tuple[str | None, Any]:
    """The export call's ``partition_column``/``partition_value``, else the running block's configuration."""
    from dagsmith.io.runtime import block_setting

    return column or block_setting("partition_column"), value if value is not None else block_setting("partition_value")


def require_column(column: str | None, where: str) -> str:
    """The partition column, or a ConfigError saying how to give it."""
    if not column:
        raise ConfigError(
            f"{where}: if_exists='replace_partition' needs the partition column",
            hint="pass partition_column='pickup_date' (SQL blocks: partition_column in the block's configuration)",
        )
    return column


def resolve_partition(
    column: str | None,
    value: Any,
    arrow_type: "pa.DataType",
    *,
    variables: Mapping[str, Any] | None = None,
    where: str = "replace_partition",
) -> Partition:
    """The partition to replace for a column of ``arrow_type`` (see the module docstring)."""
    import pyarrow as pa

    column = require_column(column, where)
    t = _plain(arrow_type) if arrow_type is not None else pa.null()
    if value is None:
        if variables is None:
            from dagsmith.io.runtime import current_variables

            variables = current_variables()
        vars_ = variables
        start, end = vars_.get("interval_start_datetime"), vars_.get("interval_end_datetime")
        if start is None or end is None:
            raise ConfigError(
                f"{where}: no partition_value given and no run interval to take it from (not inside a pipeline run)",
                hint="pass partition_value='2021-01-05' (or a (low, high) pair) to export()",
            )
        if pa.types.is_null(t):
            t = pa.timestamp("us", "UTC")  # an empty frame: compare as times (the database casts)
        if not (pa.types.is_date(t) or pa.types.is_timestamp(t)):
            raise ConfigError(
                f"{where}: column {column!r} is {t}, so the partition cannot be taken from the run's interval",
                hint="pass partition_value=… (a value of that column), or partition by a date or timestamp column",
            )
        start, end = _as_datetime(start), _as_datetime(end)
        low, high = _typed(start, t, column, where), _typed(end, t, column, where)
        if low == high:
            raise ConfigError(
                f"{where}: the run's interval ({start.isoformat()} to {end.isoformat()}) is shorter than a day, "
                f"but column {column!r} holds dates",
                hint="partition by a timestamp column, or pass partition_value= (the day this run owns)",
            )
        return Partition(column, low, high)
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ConfigError(f"{where}: partition_value {value!r} must be one value or a (low, high) pair")
        return Partition(column, _typed(value[0], t, column, where), _typed(value[1], t, column, where))
    return Partition(column, _typed(value, t, column, where))


def check_within(table: "pa.Table", partition: Partition, *, target: str) -> None:
    """Refuse a frame holding rows outside the partition (nothing is written)."""
    if partition.column not in table.column_names:
        raise ConfigError(
            f"cannot replace a partition of {target}: the frame has no column {partition.column!r}"
            f" (columns: {table.column_names})",
            hint="partition_column must name a column of the frame",
        )
    import pyarrow.compute as pc

    inside = partition.mask(table.column(partition.column))
    outside = len(inside) - (pc.sum(inside).as_py() or 0)
    if not outside:
        return
    index = pc.index(inside, False).as_py()
    example = table.column(partition.column)[index].as_py()
    raise TerminalConnectorError(
        f"cannot replace partition {partition.describe()} of {target}: {outside} of {table.num_rows} rows are "
        f"outside it (e.g. {partition.column} = {_show(example)}); nothing was written",
        hint="replace_partition writes exactly one partition, so a re-run replaces what this run wrote: filter the "
        "frame to the partition in the block, or pass the partition_value that covers it",
    )


def _plain(t: "pa.DataType") -> "pa.DataType":
    import pyarrow as pa

    return t.value_type if pa.types.is_dictionary(t) else t


def _as_datetime(value: Any) -> dt.datetime:
    if isinstance(value, str):
        value = parse_iso(value)
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    if hasattr(value, "to_pydatetime"):
        return value.to_pydatetime()
    raise ConfigError(f"replace_partition: {value!r} is not a date or time")


def _typed(value: Any, t: "pa.DataType", column: str, where: str) -> Any:
    """``value`` as a Python value of the column's type (dates, datetimes, numbers, text)."""
    import pyarrow as pa

    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if pa.types.is_null(t):  # an empty frame has no column type: ISO text becomes a date or a time
        if isinstance(value, str):
            text = value.strip()
            try:
                return dt.date.fromisoformat(text) if len(text) == 10 else _as_datetime(text)
            except ValueError:
                return value
        return value
    if pa.types.is_date(t):
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value.strip()[:10])
            except ValueError:
                pass
    elif pa.types.is_timestamp(t):
        if isinstance(value, str):
            try:
                value = _as_datetime(value)
            except ValueError:
                value = None
        elif isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            value = dt.datetime(value.year, value.month, value.day)
        if isinstance(value, dt.datetime):
            if t.tz is None:
                return value.replace(tzinfo=None)  # wall-clock time, as naive columns hold it
            return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    else:
        try:
            return pa.scalar(value).cast(t).as_py() if not isinstance(value, str) else pa.array([value]).cast(t)[0].as_py()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            pass
    raise ConfigError(f"{where}: partition_value {value!r} is not a value of column {column!r} ({t})")


def _arrow_scalar(value: Any, t: "pa.DataType") -> Any:
    import pyarrow as pa

    if pa.types.is_timestamp(t) and isinstance(value, dt.datetime):
        if t.tz is None and value.tzinfo is not None:
            value = value.replace(tzinfo=None)
        elif t.tz is not None and value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
    return pa.scalar(value, type=t)


def _show(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return repr(value)
