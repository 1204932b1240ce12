"""Dynamic blocks: how a block that returns a list fans out into one child run per item.

Mage's rules (``configuration.dynamic: true`` on the parent, ``reduce_output: true``
on a child), computed here once per run and used by the runner:

- Every block downstream of a dynamic block is a *dynamic child*: one child per
  item, run id ``<child uuid>:<metadata.block_uuid or item index>``. The child gets
  its item as the positional input and the item's metadata merged into its kwargs.
- The downstream of a dynamic child (that does not reduce) is a child too: one per
  child of its upstream, same suffix (``transform:3`` → ``export:3``).
- A dynamic child that is itself dynamic fans out again (nested): its children get
  one more suffix part (``inner:1:0``).
- ``reduce_output: true`` on a child collapses one level: its downstream runs once
  (per outer item, when nested) and gets the list of all children's outputs, in
  item order.

The *depth* of a block is how many fan-out levels it sits under. The plan holds one
node per block instance; a block of depth ≥ 1 also has *group* nodes (its uuid, or
uuid plus an outer suffix) that stand for "all my children under this prefix": a
group becomes ready when the block that fans it out completes, is then expanded
into its children, and finishes when they all have (failed if any child failed).
Reduce steps depend on the group, so one failed child fails only its own branch
and the reduce step.

This module is pure: layout analysis, ids, and splitting a parent's output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from dagsmith.dag.graph import reachable, topological_order
from dagsmith.errors import ProjectError

SEP = ":"


def node_id(template: str, scope: Sequence[str]) -> str:
    """The plan/run id of ``template`` at ``scope`` (Mage's ``<uuid>:<key>[:<key>…]``)."""
    return template if not scope else template + SEP + SEP.join(scope)


@dataclass
class FanOut:
    """A dynamic block's output split into items, per-item metadata and child keys."""

    items: list[Any]
    metadata: list[dict[str, Any]]
    keys: list[str]
    dropped: list[str] = field(default_factory=list)
    """Child keys given by more than one item: like Mage, only the first item makes that child."""


def split_dynamic_output(value: Any, block_uuid: str) -> FanOut:
    """What a dynamic block returned (as its downstream receives it) → items, metadata, child keys.

    Mage 0.9.80's shapes (``output_0`` = the items, ``output_1`` = their metadata):

    - ``[items]`` or ``items`` → one child per item (``[[10, 20, 30]]`` → 3 children);
    - ``[items, metadata]`` (list or tuple; metadata a list of dicts, possibly shorter or empty)
      → one child per item, keyed by ``metadata[i]['block_uuid']`` when given, else by index;
    - a pandas DataFrame (alone or as the items) → one child per row, given the row as a Series.

    Where Mage 0.9.80 fails (a flat list ``[10, 20, 30]``, a list of dicts, three or more lists)
    every element is one item. ``[]`` makes no child (Mage polls ~2 minutes, then runs one child
    with no argument). Raises ``ProjectError`` for anything that is not a list or a frame.
    """
    if isinstance(value, tuple):
        value = list(value)
    metas: list[Any] = []
    if _is_pandas_frame(value):
        items = _rows(value)
    elif isinstance(value, list):
        if _looks_like_pair(value):
            first = value[0]
            items = _rows(first) if _is_pandas_frame(first) else list(first)
            metas = list(value[1])
        else:
            items = value
    else:
        kind = type(value).__name__
        raise ProjectError(
            f"dynamic block '{block_uuid}' returned a {kind}; a dynamic block must return a list of items "
            "(or [items, metadata], or a DataFrame)",
            hint="return a list (one child run per item), or set configuration.dynamic: false",
        )
    metadata = [dict(m) if isinstance(m, Mapping) else {} for m in metas[: len(items)]]
    metadata += [{} for _ in range(len(items) - len(metadata))]
    fan = FanOut(items=[], metadata=[], keys=[])
    for i, (item, meta) in enumerate(zip(items, metadata)):
        given = meta.get("block_uuid")
        key = str(given) if given not in (None, "") else str(i)
        if key in fan.keys:  # Mage creates a child once per uuid (skip_if_exists)
            fan.dropped.append(key)
            continue
        fan.items.append(item)
        fan.metadata.append(meta)
        fan.keys.append(key)
    return fan


def reduce_outputs(values: Sequence[Any]) -> list[Any]:
    """What the downstream of a ``reduce_output`` child receives (Mage 0.9.80, measured).

    The children's outputs in item order; an output that is a list is concatenated
    (flattened one level), anything else is appended.
    """
    out: list[Any] = []
    for value in values:
        if isinstance(value, list):
            out.extend(value)
        else:
            out.append(value)
    return out


def _is_pandas_frame(value: Any) -> bool:
    return type(value).__name__ == "DataFrame" and type(value).__module__.split(".", 1)[0] == "pandas"


def _rows(frame: Any) -> list[Any]:
    return [frame.iloc[i] for i in range(len(frame))]


def _looks_like_pair(value: list[Any]) -> bool:
    """``[items, metadata]``: two elements, items a sequence or frame, metadata a list of dicts."""
    if len(value) != 2:
        return False
    first, second = value
    if not (isinstance(first, (list, tuple)) or _is_pandas_frame(first)):
        return False
    return isinstance(second, (list, tuple)) and all(isinstance(m, Mapping) for m in second)


@dataclass
class Node:
    """What the runner knows about one plan node that belongs to a dynamic block."""

    template: str
    scope: tuple[str, ...]
    index: tuple[int, ...]
    metadata: dict[str, Any] = field(default_factory=dict)
    group: bool = False
    parent: str | None = None
    """The group node this node belongs to (None for top-level groups)."""
    children: list[str] = field(default_factory=list)
    expanded: bool = False
    open: int = 0
    """Children not final yet (groups only)."""


class DynamicLayout:
    """Per-block depth and fan-out sources of one pipeline run (over the blocks that run)."""

    def __init__(self, blocks: Mapping[str, Any], order: Sequence[str]) -> None:
        """``blocks``: uuid → BlockSpec of the blocks in the run; ``order``: topological order."""
        self.blocks = blocks
        self.depth: dict[str, int] = {}
        self.driver: dict[str, str | None] = {}
        if not any(spec.is_dynamic for spec in blocks.values()):  # the usual pipeline: every depth is 0
            self.depth = dict.fromkeys(blocks, 0)
            self.driver = dict.fromkeys(blocks)
            return
        order = _topological(blocks, order)
        for uid in order:
            spec = blocks[uid]
            ups = [u for u in spec.upstream_blocks if u in blocks]
            best, driver = 0, None
            for u in ups:
                c = self.contrib(u)
                if c > best:
                    best, driver = c, u
            self.depth[uid] = best
            self.driver[uid] = driver
        self._check(order)

    @property
    def any_dynamic(self) -> bool:
        return any(self.blocks[u].is_dynamic for u in self.depth) or any(d for d in self.depth.values())

    def contrib(self, upstream: str) -> int:
        """The depth an upstream block gives the blocks downstream of it."""
        spec = self.blocks[upstream]
        d = self.depth[upstream]
        if spec.is_dynamic:
            d += 1
        if spec.reduce_output and self.depth[upstream] > 0:
            d -= 1
        return d

    def fans_out(self, upstream: str) -> bool:
        """True when ``upstream`` is the block whose items make the children of its downstream."""
        spec = self.blocks[upstream]
        return spec.is_dynamic and not (spec.reduce_output and self.depth[upstream] > 0)

    def reduces(self, upstream: str) -> bool:
        spec = self.blocks[upstream]
        return spec.reduce_output and self.depth[upstream] > 0 and not spec.is_dynamic

    def source(self, template: str, level: int) -> str:
        """The dynamic block whose items make ``template``'s scope part number ``level`` (1-based)."""
        t = template
        while True:
            drv = self.driver[t]
            if drv is None:  # pragma: no cover - guarded by depth checks
                raise ValueError(f"{template} has no fan-out at level {level}")
            if self.fans_out(drv) and self.depth[drv] + 1 == level:
                return drv
            t = drv

    def chain(self, template: str) -> tuple[str, ...]:
        """The fan-out blocks of each level above ``template``, outermost first."""
        return tuple(self.source(template, level) for level in range(1, self.depth[template] + 1))

    def _upstream_chain(self, upstream: str) -> tuple[str, ...]:
        c = self.contrib(upstream)
        return tuple(
            upstream if self.fans_out(upstream) and self.depth[upstream] + 1 == level else self.source(upstream, level)
            for level in range(1, c + 1)
        )

    def _check(self, order: Sequence[str]) -> None:
        for uid in order:
            if self.depth[uid] == 0:
                continue
            mine = self.chain(uid)
            for u in self.blocks[uid].upstream_blocks:
                if u not in self.blocks:
                    continue
                theirs = self._upstream_chain(u)
                if mine[: len(theirs)] != theirs:
                    raise ProjectError(
                        f"block '{uid}' joins upstream blocks from different dynamic fan-outs "
                        f"('{u}' fans out from {', '.join(theirs)}; '{uid}' from {', '.join(mine)}); "
                        "dagsmith cannot pair their children",
                        hint="reduce one branch (reduce_output: true) before joining them",
                    )

    def upstream_scope(self, template: str, scope: tuple[str, ...], upstream: str) -> tuple[str, ...]:
        """The scope of the ``upstream`` node that instance ``template@scope`` reads."""
        d = self.depth[upstream]
        return scope[: d - 1] if self.reduces(upstream) else scope[:d]

    def upstream_ref(self, template: str, scope: tuple[str, ...], index: tuple[int, ...], upstream: str) -> tuple[str, str, int | None]:
        """How instance ``template@scope`` reads ``upstream``: ``(kind, node, item)``.

        kind ``item``: item number ``item`` of the fan-out output of ``node``;
        ``reduce``: the list of outputs of the children of group ``node``;
        ``value``: the output of ``node``.
        """
        d = self.depth[upstream]
        if self.fans_out(upstream):
            return "item", node_id(upstream, scope[:d]), index[d]
        if self.reduces(upstream):
            return "reduce", node_id(upstream, scope[: d - 1]), None
        return "value", node_id(upstream, scope[:d]), None


def _topological(blocks: Mapping[str, Any], order: Sequence[str]) -> list[str]:
    """``order`` and its upstreams, each block after its upstream blocks (cycles are caught earlier)."""
    ups = {uid: [u for u in blocks[uid].upstream_blocks if u in blocks] for uid in blocks}
    wanted = set(order).union(reachable(ups, order))
    return topological_order({uid: ups[uid] for uid in (*order, *ups) if uid in wanted})
