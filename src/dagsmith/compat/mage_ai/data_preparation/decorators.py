"""``mage_ai.data_preparation.decorators``: the block decorators, as Mage block files import them."""

from dagsmith.blocks.decorators import (  # noqa: F401
    _marker,
    callback,
    condition,
    custom,
    data_exporter,
    data_loader,
    on_failure,
    on_success,
    preprocesser,
    sensor,
    test,
    transformer,
)

# Names Mage's templates import for block kinds dagsmith does not run (yet): importing them
# works, the block type itself is reported by validation.
extension = _marker("extension")
streaming_source = _marker("streaming_source")
streaming_sink = _marker("streaming_sink")
