"""Schema drift, checked before any row is written: one mechanism for every table target.

Before ``append`` or ``replace_partition`` a connector (or a SQL block) describes the
target's columns (:class:`Column`, with the Arrow type of the values the column holds)
and what is about to be written (a frame's Arrow columns, or a query's result
columns), and :func:`compare` sorts every column into one of:

- *same* — the values fit the column as they are, or can be cast without changing
  any of them (``int32`` into ``bigint``; floats that are all whole numbers into
  ``bigint``; dates into timestamps);
- *added* — in the frame, not in the table;
- *missing* — in the table, not in the frame (columns with a default, an identity
  or a generated value never count: the database fills them);
- *changed* — the types differ and at least one value would be stored differently
  (``3.5`` into ``bigint`` becomes ``4``), or the types are of different kinds
  (text into a number column).

:func:`enforce` raises :class:`~dagsmith.errors.SchemaDriftError` with the columns side
by side unless every difference is allowed by ``on_schema_change``:

- ``fail`` (default): any added, missing or changed column stops the export;
- ``add_columns``: added columns are created in the target (by the caller, in its
  transaction) and missing ones are left NULL; a changed column still stops it.

:func:`conform` then casts the frame's columns to the target's types, so what is
written is exactly what was checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable

from dagsmith.errors import ConfigError, SchemaDriftError

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

ON_SCHEMA_CHANGE = ("fail", "add_columns")
ANY_NUMBER = "any-number"  # a target kind: unconstrained numeric (PostgreSQL numeric, BigQuery BIGNUMERIC)
_SHOW_ALL_UP_TO = 30  # columns listed in full in the side-by-side diff; beyond that only differences


@dataclass(frozen=True)
class Column:
    """One column of a target table or of what is written to it."""

    name: str
    type: str
    """As the database spells it (what the user sees in the diff)."""
    arrow: "pa.DataType | None" = None
    """The Arrow type of its values, None when dagsmith does not map it (json, uuid, arrays…)."""
    has_default: bool = False
    """Default, identity, serial or generated: the database fills it when the frame leaves it out."""
    kind: str | None = None
    """``ANY_NUMBER`` for unconstrained numerics that hold any number exactly."""


@dataclass(frozen=True)
class Change:
    """One column that differs between the target and the frame."""

    column: str
    kind: str  # added | missing | changed
    table_type: str | None
    frame_type: str | None
    detail: str = ""

    def __str__(self) -> str:
        text = f"{self.column}: {self.kind}"
        if self.kind == "changed":
            text += f" (table {self.table_type}, frame {self.frame_type})"
        return text + (f": {self.detail}" if self.detail else "")


@dataclass
class SchemaDiff:
    """Every column side by side, and the ones that differ."""

    rows: list[tuple[str, str | None, str | None, str]] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    casts: dict[str, "pa.DataType"] = field(default_factory=dict)
    """Frame columns to cast to the target's type before writing (each checked lossless)."""
    label: str = "frame"
    """What is being written: ``frame`` or ``query``."""

    @property
    def added(self) -> list[Change]:
        return [c for c in self.changes if c.kind == "added"]

    @property
    def missing(self) -> list[Change]:
        return [c for c in self.changes if c.kind == "missing"]

    @property
    def changed(self) -> list[Change]:
        return [c for c in self.changes if c.kind == "changed"]

    def blocking(self, on_schema_change: str) -> list[Change]:
        """The changes ``on_schema_change`` does not allow."""
        if on_schema_change == "add_columns":
            return self.changed
        return list(self.changes)

    def render(self) -> str:
        """The columns side by side: ``column | table | frame | what differs``."""
        rows = self.rows
        hidden = 0
        if len(rows) > _SHOW_ALL_UP_TO:
            shown = [r for r in rows if r[3]]
            hidden = len(rows) - len(shown)
            rows = shown
        head = ("column", "table", self.label, "")
        cells = [head] + [(n, t or "—", f or "—", note) for n, t, f, note in rows]
        widths = [max(len(str(c[i])) for c in cells) for i in range(3)]
        lines = []
        for n, t, f, note in cells:
            line = f"  {n:<{widths[0]}}  {t:<{widths[1]}}  {f:<{widths[2]}}"
            lines.append((line + ("  ← " + note if note else "")).rstrip())
        if hidden:
            lines.append(f"  … and {hidden} matching columns not shown")
        return "\n".join(lines)


def on_schema_change_setting(value: Any, *, where: str = "on_schema_change") -> str:
    """Normalize an ``on_schema_change`` value or raise a ConfigError naming the choices. None means the
    running block's ``on_schema_change`` configuration, else ``fail``."""
    if value in (None, ""):
        from dagsmith.io.runtime import block_setting

        value = block_setting("on_schema_change")
        where = "the block's configuration on_schema_change"
    if value in (None, ""):
        return "fail"
    text = str(getattr(value, "value", value)).strip().lower()
    if text not in ON_SCHEMA_CHANGE:
        raise ConfigError(
            f"{where}={value!r} is not a schema-change policy",
            hint="use 'fail' (stop on any difference, the default) or 'add_columns' (add new columns, leave missing ones NULL)",
        )
    return text


def frame_columns(table: "pa.Table | pa.Schema", type_name: Callable[["pa.DataType"], str]) -> list[Column]:
    """The columns of an Arrow table/schema, named in the target's type vocabulary."""
    schema = table.schema if hasattr(table, "schema") else table
    return [Column(f.name, type_name(f.type), f.type) for f in schema]


def compare(
    target: Iterable[Column],
    incoming: Iterable[Column],
    *,
    values: "pa.Table | None" = None,
    label: str = "frame",
) -> SchemaDiff:
    """Compare the target's columns with what is about to be written (``values``: the frame, for
    value-level checks; without it — a SQL query's result — type changes that could lose data count)."""
    target = list(target)
    incoming = list(incoming)
    by_name = {c.name: c for c in incoming}
    diff = SchemaDiff(label=label)
    for col in target:
        new = by_name.get(col.name)
        if new is None:
            if col.has_default:
                diff.rows.append((col.name, col.type, None, ""))
            else:
                diff.rows.append((col.name, col.type, None, "missing"))
                diff.changes.append(Change(col.name, "missing", col.type, None))
            continue
        array = values.column(col.name) if values is not None and col.name in values.column_names else None
        ok, detail, cast = _fits(new, col, array)
        if ok:
            if cast is not None:
                diff.casts[col.name] = cast
            diff.rows.append((col.name, col.type, new.type, ""))
        else:
            diff.rows.append((col.name, col.type, new.type, f"changed: {detail}" if detail else "changed"))
            diff.changes.append(Change(col.name, "changed", col.type, new.type, detail))
    known = {c.name for c in target}
    for new in incoming:
        if new.name not in known:
            diff.rows.append((new.name, None, new.type, "added"))
            diff.changes.append(Change(new.name, "added", None, new.type))
    return diff


def enforce(diff: SchemaDiff, *, on_schema_change: str, target: str, action: str = "append to") -> None:
    """Raise SchemaDriftError (columns side by side, nothing written) unless every change is allowed."""
    blocking = diff.blocking(on_schema_change)
    if not blocking:
        return
    counts = []
    for kind in ("added", "missing", "changed"):
        n = sum(1 for c in blocking if c.kind == kind)
        if n:
            counts.append(f"{n} {kind}")
    message = (
        f"cannot {action} {target}: the columns differ from the table's ({', '.join(counts)}); nothing was written\n"
        + diff.render()
    )
    if on_schema_change == "add_columns":
        hint = (
            "on_schema_change: add_columns adds new columns but never changes an existing column's type: "
            "cast the column in the block (or the query) to the table's type, or use if_exists='replace'"
        )
    else:
        hint = (
            "make the frame match the table (rename, cast or drop columns in the block), or set "
            "on_schema_change: add_columns on the block (or on_schema_change='add_columns' in the export call) "
            "to add new columns and leave missing ones NULL; if_exists='replace' recreates the table"
        )
    raise SchemaDriftError(message, changes=blocking, hint=hint)


def conform(table: "pa.Table", diff: SchemaDiff) -> "pa.Table":
    """Cast the frame's columns to the target's types where :func:`compare` found that lossless."""
    import pyarrow.compute as pc

    for name, arrow_type in diff.casts.items():
        i = table.column_names.index(name)
        table = table.set_column(i, name, pc.cast(table.column(i), arrow_type, safe=False))
    return table


# --------------------------------------------------------------------------- type rules


def _family(t: "pa.DataType") -> str:
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        return _family(t.value_type)
    if pa.types.is_null(t):
        return "null"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "number"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or getattr(pa.types, "is_string_view", lambda _: False)(t):
        return "text"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return "binary"
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return "datetime"
    if pa.types.is_time(t):
        return "time"
    if pa.types.is_duration(t) or pa.types.is_interval(t):
        return "duration"
    if pa.types.is_nested(t):
        return "nested"
    return "other"


def _number_widens(src: "pa.DataType", dst: "pa.DataType") -> bool:
    """Every value of ``src`` is exactly a value of ``dst`` (by type alone)."""
    import pyarrow as pa

    if pa.types.is_integer(src):
        bits, signed = src.bit_width, pa.types.is_signed_integer(src)
        if pa.types.is_integer(dst):
            if pa.types.is_signed_integer(dst):
                return dst.bit_width > bits or (signed and dst.bit_width == bits)
            return not signed and dst.bit_width >= bits
        if pa.types.is_floating(dst):
            return bits <= {16: 8, 32: 16, 64: 32}[dst.bit_width]
        if pa.types.is_decimal(dst):
            digits = {8: 3, 16: 5, 32: 10, 64: 20}[bits]
            return dst.precision - dst.scale >= digits
        return False
    if pa.types.is_floating(src):
        return pa.types.is_floating(dst) and dst.bit_width >= src.bit_width
    if pa.types.is_decimal(src):
        return pa.types.is_decimal(dst) and dst.scale >= src.scale and dst.precision - dst.scale >= src.precision - src.scale
    return False


def _fits(new: Column, col: Column, array: Any) -> tuple[bool, str, "pa.DataType | None"]:
    """(fits, why not, cast to apply) for one column present on both sides."""
    import pyarrow as pa

    src, dst = new.arrow, col.arrow
    if src is not None and pa.types.is_dictionary(src):
        src = src.value_type
    if src is not None and _family(src) == "null":
        return True, "", None  # an all-null column fits anything
    if array is not None and len(array) and array.null_count == len(array):
        # all values null, typed by a writer's default (pandas object → text): fits, written as the table's type
        return True, "", dst
    if dst is None or src is None:
        if col.kind == ANY_NUMBER and src is not None and _family(src) == "number":
            return True, "", None
        if _same_spelling(new.type, col.type):
            return True, "", None
        if dst is None and src is not None and _family(src) in ("text", "nested"):
            return True, "", None  # the database parses text (json, uuid, enums, arrays)
        if src is None:
            return False, f"{new.type} values may not fit in {col.type}; cast them in the query", None
        return False, f"{new.type} values do not fit in {col.type}", None
    if src.equals(dst):
        return True, "", None
    fs, fd = _family(src), _family(dst)
    if fs != fd:
        return False, f"{new.type} values do not fit in {col.type}", None
    if fs == "text" or fs == "binary" or fs == "bool":
        return True, "", None
    if fs == "datetime":
        if pa.types.is_date(dst) and pa.types.is_timestamp(src):
            return _values_survive(array, src, dst, col, new)
        if pa.types.is_timestamp(src) and pa.types.is_timestamp(dst) and (src.tz is None) != (dst.tz is None):
            # the database reads naive times in its session time zone: allowed, as on INSERT
            return True, "", None
        return True, "", None  # units: the database keeps its own precision
    if fs == "number":
        if _number_widens(src, dst):
            return True, "", dst
        return _values_survive(array, src, dst, col, new)
    if fs in ("time", "duration"):
        return True, "", None
    if fs == "nested":
        return _same_spelling(new.type, col.type), "", None
    return False, f"{new.type} values do not fit in {col.type}", None


def _values_survive(array: Any, src: "pa.DataType", dst: "pa.DataType", col: Column, new: Column):
    """Value-level check: every value cast to ``dst`` and back is the value again (Arrow's own "safe"
    casts let some changes through, e.g. float → decimal rounds)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if array is None:  # a query's result: only the types are known
        return False, f"{new.type} values may not fit in {col.type}; cast them in the query", None
    if pa.types.is_dictionary(array.type):
        array = array.cast(array.type.value_type)
        src = array.type
    try:
        back = pc.cast(pc.cast(array, dst, safe=False), src, safe=False)
        bad = pc.fill_null(pc.not_equal(back, array), False)
        count = pc.sum(bad).as_py() or 0
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False, f"some values cannot be stored exactly in {col.type}", None
    if not count:
        return True, "", dst
    total = len(array) - array.null_count
    example = array[pc.index(bad, True).as_py()].as_py()
    stored = _stored_as(example, dst)
    what = f"{example!r} would be stored as {stored!r}" if stored is not None else f"{example!r} does not fit"
    return False, f"{count} of {total} values change, e.g. {what}", None


def _stored_as(value: Any, dst: "pa.DataType") -> Any:
    """What a database would keep of ``value`` in a ``dst`` column (rounding, as PostgreSQL/DuckDB do)."""
    import datetime as dt
    import decimal

    import pyarrow as pa

    try:
        if pa.types.is_integer(dst) and isinstance(value, (float, decimal.Decimal)):
            rounded = int(decimal.Decimal(str(value)).quantize(decimal.Decimal(1), rounding=decimal.ROUND_HALF_UP))
            lo, hi = (-(2 ** (dst.bit_width - 1)), 2 ** (dst.bit_width - 1) - 1)
            return rounded if lo <= rounded <= hi else None
        if pa.types.is_integer(dst) and isinstance(value, int):
            return None  # out of range: an error, not a change
        if pa.types.is_date(dst) and isinstance(value, dt.datetime):
            return value.date()
        if pa.types.is_floating(dst):
            return float(value) if dst.bit_width == 64 else pa.scalar(value, pa.float32()).as_py()
        if pa.types.is_decimal(dst):
            return decimal.Decimal(str(value)).quantize(decimal.Decimal(1).scaleb(-dst.scale), rounding=decimal.ROUND_HALF_UP)
    except Exception:
        return None
    return None


def _same_spelling(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return False
    return " ".join(a.lower().split()) == " ".join(b.lower().split())
