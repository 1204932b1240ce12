"""SQL blocks: render the Jinja template, run it on the block's data provider, return a frame.

Placeholder until SQL blocks land: running one raises a clear error.
"""

from __future__ import annotations

from typing import Any

from dagsmith.blocks.context import BlockCall
from dagsmith.errors import ProjectError


def run_sql_block(call: BlockCall) -> Any:
    raise ProjectError(
        f"block '{call.block.uuid}' is a SQL block ({call.block.relpath}); SQL blocks are not supported yet",
    )
