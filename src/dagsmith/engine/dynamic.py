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


def split_dynamic_output(value: Any, block_uuid: str) -> FanOut:
    """``[items, metadata]`` or a plain list → items, metadata and unique child keys.

    Raises ``ProjectError`` when the value cannot be fanned out (not a list).
    """
    items: list[Any]
    metas: list[Any]
    if isinstance(value, tuple):
        value = list(value)
    if _looks_like_pair(value):
        items, metas = list(value[0]), list(value[1])
    elif isinstance(value, list):
        items, metas = value, []
    else:
        kind = type(value).__name__
        raise ProjectError(
            f"dynamic block '{block_uuid}' returned a {kind}; a dynamic block must return a list of items "
            "(or [items, metadata])",
            hint="return a list (one child run per item), or set configuration.dynamic: false",
        )
    metadata = [dict(m) if isinstance(m, Mapping) else {} for m in metas[: len(items)]]
    metadata += [{} for _ in range(len(items) - len(metadata))]
    keys: list[str] = []
    seen: set[str] = set()
    for i, meta in enumerate(metadata):
        key = str(meta["block_uuid"]) if meta.get("block_uuid") not in (None, "") else str(i)
        if key in seen:
            key = f"{key}_{i}"
        seen.add(key)
        keys.append(key)
    return FanOut(items=list(items), metadata=metadata, keys=keys)


def _looks_like_pair(value: Any) -> bool:
    if not (isinstance(value, list) and len(value) == 2):
        return False
    first, second = value
    if not isinstance(first, (list, tuple)) or not isinstance(second, (list, tuple)):
        return False
    if not all(isinstance(m, Mapping) for m in second):
        return False
    return len(second) == len(first) or (len(second) > 0 and len(second) <= len(first))


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
    """``order`` rearranged so every block comes after its upstream blocks (cycles are caught earlier)."""
    done: dict[str, None] = {}
    visiting: set[str] = set()

    def visit(uid: str) -> None:
        if uid in done or uid in visiting:
            return
        visiting.add(uid)
        for u in blocks[uid].upstream_blocks:
            if u in blocks:
                visit(u)
        visiting.discard(uid)
        done[uid] = None

    for uid in order:
        visit(uid)
    return list(done)
