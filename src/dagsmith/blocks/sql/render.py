"""Rendering a SQL block's Jinja template into statements with bound parameters.

Owns the templating rules of SQL blocks (the module docstring of
``dagsmith.blocks.sql`` states them for users) and the small SQL tokenizer
that places parameters and splits statements:

- Every ``{{ expr }}`` is passed through a Jinja ``finalize`` hook. Values that
  are *identifiers* — what ``df_N``, ``block_output('uuid')``, ``ident(x)`` and
  ``raw(x)`` return (an :class:`SqlText`) — are written into the SQL as they
  are (identifiers dagsmith generates are already quoted). Every other value
  becomes a *parameter*: a marker is written and the value recorded.
- After rendering, :func:`split_and_bind` walks the text once. A marker in
  plain SQL becomes a bind placeholder with the native value (datetime,
  int, …); a marker that is the whole content of a quoted literal
  (``'{{ ds }}'``) becomes one placeholder bound as text (the quotes are
  dropped); a marker inside a longer literal (``'{{ ds }}%'``) becomes a
  concatenation ``('' || $1 || '%')``; inside a quoted identifier the value is
  escaped into the identifier; inside a ``/* */`` comment it is written as text
  (secrets as ``******``, ``project.masking.MASK``), and ``{{ … }}`` in a ``--`` comment is kept as written. Lists and tuples expand to one placeholder per item
  (``IN ({{ ids }})``). Statements are split on ``;`` outside quotes, comments
  and dollar-quoted bodies.

Nothing here touches a database; the dialect decides the placeholder spelling.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

MARK_OPEN, MARK_CLOSE = "\x1e", "\x1f"
_MARK_RE = re.compile("\x1e(\\d+)\x1f")


class SqlText(str):
    """SQL written into the query as it is (quoted identifiers, table names, ``raw(...)``)."""


@dataclass
class Param:
    value: Any
    secret: bool = False


class Secret:
    """A secret value: bound like any value, shown as the one mask (``******``)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __str__(self) -> str:  # never leak through str()
        from dagsmith.project.masking import MASK

        return MASK

    __repr__ = __str__


@dataclass
class Rendered:
    """The template after Jinja: text with parameter markers, and the recorded values."""

    text: str
    params: list[Param] = field(default_factory=list)


@dataclass
class Statement:
    """One statement ready for a driver: pieces of SQL text and parameter slots."""

    pieces: list[str | tuple[int, Any, bool]]
    """str: SQL text; (index, value, secret): a placeholder bound to ``value``."""
    start_line: int
    """1-based line of the rendered SQL where this statement's text starts."""

    @property
    def values(self) -> list[Any]:
        return [p[1] for p in self.pieces if isinstance(p, tuple)]

    def sql(self, placeholder: Callable[[int], str]) -> str:
        """The statement with placeholders spelled by ``placeholder(n)`` (n counts from 1)."""
        out, n = [], 0
        for piece in self.pieces:
            if isinstance(piece, tuple):
                n += 1
                out.append(placeholder(n))
            else:
                out.append(piece)
        return "".join(out)

    def is_empty(self) -> bool:
        text = "".join(p for p in self.pieces if isinstance(p, str))
        return not strip_comments(text).strip()


# --------------------------------------------------------------------------- Jinja


def render_template(source: str, context: Mapping[str, Any], *, filename: str, params: bool = True) -> Rendered:
    """Render ``source`` with a strict Jinja environment.

    With ``params`` (the default) every non-identifier value becomes a marker and
    is recorded; without, values are written as text (used for the profile name).
    Raises ``jinja2`` errors unchanged; the caller adds block/file/line.
    """
    import jinja2

    recorded: list[Param] = []

    def finalize(value: Any) -> Any:
        if isinstance(value, jinja2.Undefined):
            str(value)  # StrictUndefined raises, naming the missing name
        if hasattr(value, "__sql__"):  # lazy table references (df_N)
            value = value.__sql__()
        if isinstance(value, SqlText):
            return value
        if not params:
            return value
        if isinstance(value, Secret):
            recorded.append(Param(value.value, secret=True))
        else:
            recorded.append(Param(value))
        return SqlText(f"{MARK_OPEN}{len(recorded) - 1}{MARK_CLOSE}")

    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        finalize=finalize,
    )
    template = env.from_string(protect_comments(source))
    template.filename = filename
    text = template.render(dict(context))
    return Rendered(text, recorded)


_JINJA_EXPR = re.compile(r"\{\{.*?\}\}")
_JINJA_TAG = re.compile(r"\{[{%#].*?[}%#]\}")


def protect_comments(source: str) -> str:
    """Keep ``{{ … }}`` inside ``--`` line comments as text: a comment that mentions ``{{ df_1 }}`` must
    neither load that upstream nor fail on a name that does not exist."""
    if "--" not in source or "{{" not in source:
        return source
    out = []
    for line in source.split("\n"):
        at = _comment_start(line)
        if at is not None and "{{" in line[at:]:
            comment = _JINJA_EXPR.sub(lambda m: "{% raw %}" + m.group(0) + "{% endraw %}", line[at:])
            line = line[:at] + comment
        out.append(line)
    return "\n".join(out)


def _comment_start(line: str) -> int | None:
    """Where a ``--`` comment starts on this line (outside quotes and Jinja tags), else None."""
    masked = _JINJA_TAG.sub(lambda m: " " * len(m.group(0)), line)
    quote = None
    for i, ch in enumerate(masked):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif masked.startswith("--", i):
            return i
    return None


# --------------------------------------------------------------------------- tokenizer


def strip_comments(sql: str) -> str:
    sql = re.sub(r"--[^\n]*", "", sql)
    return re.sub(r"/\*.*?\*/", "", sql, flags=re.S)


_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z_0-9]*)?\$")


def split_and_bind(rendered: Rendered, *, dialect: str, split: bool = True) -> list[Statement]:
    """Split the rendered text into statements and turn markers into placeholders (see module doc)."""
    text = rendered.text
    params = rendered.params
    statements: list[Statement] = []
    current: list[str | tuple[int, Any]] = []
    buf: list[str] = []
    line = 1
    start_line = 1
    counter = [0]

    def flush_text() -> None:
        if buf:
            current.append("".join(buf))
            buf.clear()

    def add_param(value: Any, secret: bool) -> None:
        flush_text()
        current.append((counter[0], value, secret))
        counter[0] += 1

    def add_value(p: Param) -> None:
        value = p.value
        if isinstance(value, (list, tuple, set, frozenset)):
            items = list(value)
            if not items:
                buf.append("NULL")
                return
            for i, item in enumerate(items):
                if i:
                    buf.append(", ")
                add_param(item, p.secret)
            return
        add_param(value, p.secret)

    def end_statement() -> None:
        nonlocal current
        flush_text()
        stmt = Statement(current, start_line)
        if not stmt.is_empty():
            statements.append(stmt)
        current = []

    ident_quotes = "`" if dialect == "bigquery" else '"'
    string_quotes = "'\"" if dialect == "bigquery" else "'"
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == MARK_OPEN:
            m = _MARK_RE.match(text, i)
            add_value(params[int(m.group(1))])
            i = m.end()
            continue
        if ch in string_quotes:
            end = _quoted_end(text, i, ch, backslash=dialect == "bigquery")
            _literal(text[i:end], ch, params, buf, add_param, flush_text, current)
            line += text.count("\n", i, end)
            i = end
            continue
        if ch in ident_quotes:
            end = _quoted_end(text, i, ch, backslash=False)
            body = _MARK_RE.sub(lambda m: _ident_part(params[int(m.group(1))].value, ch), text[i:end])
            buf.append(body)
            line += text.count("\n", i, end)
            i = end
            continue
        if text.startswith("--", i) or (ch == "#" and dialect == "bigquery"):
            end = text.find("\n", i)
            end = n if end < 0 else end
            buf.append(_MARK_RE.sub(lambda m: _comment_text(params[int(m.group(1))]), text[i:end]))
            i = end
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            buf.append(_MARK_RE.sub(lambda m: _comment_text(params[int(m.group(1))]), text[i:end]))
            line += text.count("\n", i, end)
            i = end
            continue
        if ch == "$" and dialect == "postgres":
            m = _DOLLAR_TAG.match(text, i)
            if m and not (i and (text[i - 1].isalnum() or text[i - 1] == "_")):
                close = text.find(m.group(0), m.end())
                end = n if close < 0 else close + len(m.group(0))
                buf.append(text[i:end])
                line += text.count("\n", i, end)
                i = end
                continue
        if ch == ";" and split:
            end_statement()
            i += 1
            start_line = line  # the next statement's text starts right after the ';'
            continue
        if ch == "\n":
            line += 1
        buf.append(ch)
        i += 1
    end_statement()
    # renumber placeholders per statement
    for stmt in statements:
        k = 0
        for j, piece in enumerate(stmt.pieces):
            if isinstance(piece, tuple):
                stmt.pieces[j] = (k, piece[1], piece[2])
                k += 1
    return statements


def _quoted_end(text: str, i: int, quote: str, *, backslash: bool) -> int:
    j = i + 1
    n = len(text)
    while j < n:
        c = text[j]
        if backslash and c == "\\":
            j += 2
            continue
        if c == quote:
            if j + 1 < n and text[j + 1] == quote and not backslash:
                j += 2
                continue
            return j + 1
        j += 1
    return n


def _literal(chunk: str, quote: str, params: list[Param], buf: list[str], add_param, flush_text, current) -> None:
    """A quoted string literal, possibly holding markers."""
    if MARK_OPEN not in chunk:
        buf.append(chunk)
        return
    inner = chunk[1:-1] if chunk.endswith(quote) and len(chunk) >= 2 else chunk[1:]
    parts = _MARK_RE.split(inner)  # text, idx, text, idx, ..., text
    if len(parts) == 3 and parts[0] == "" and parts[2] == "":
        p = params[int(parts[1])]
        add_param(_as_text(p.value), p.secret)
        return
    buf.append("(")
    first = True
    for k, part in enumerate(parts):
        if k % 2 == 0:
            if part == "":
                continue
            if not first:
                buf.append(" || ")
            buf.append(quote + part + quote)
        else:
            if not first:
                buf.append(" || ")
            p = params[int(part)]
            add_param(_as_text(p.value), p.secret)
        first = False
    buf.append(")")


def _as_text(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, Secret):
        value = value.value
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def _ident_part(value: Any, quote: str) -> str:
    return str(value).replace(quote, quote + quote)


def _comment_text(p: Param) -> str:
    if p.secret:
        from dagsmith.project.masking import MASK

        return MASK
    return str(p.value).replace("\n", " ").replace("*/", "* /")


# --------------------------------------------------------------------------- display


def display_sql(statements: list[Statement], placeholder: Callable[[int], str]) -> str:
    """The statements as the database receives them, joined with ``;`` (placeholders kept)."""
    return ";\n".join(s.sql(placeholder).strip("\n") for s in statements)


def display_params(statements: list[Statement], placeholder: Callable[[int], str]) -> list[str]:
    """``$1 = '2024-01-01'`` lines for the bound values (secrets as ******)."""
    from dagsmith.project.masking import MASK

    lines = []
    for si, stmt in enumerate(statements):
        slots = [p for p in stmt.pieces if isinstance(p, tuple)]
        for k, (_i, value, secret) in enumerate(slots):
            shown = MASK if secret or isinstance(value, Secret) else repr(value)
            prefix = f"[{si + 1}] " if len(statements) > 1 else ""
            lines.append(f"{prefix}{placeholder(k + 1)} = {shown}")
    return lines
