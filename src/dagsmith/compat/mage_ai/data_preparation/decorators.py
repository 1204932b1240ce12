"""``mage_ai.data_preparation.decorators``: the block decorators, as Mage block files import them."""

from dagsmith.blocks.decorators import (  # noqa: F401
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
