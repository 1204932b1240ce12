"""``python -m dagsmith`` is the ``dagsmith`` command."""

from dagsmith.cli.app import main

main()
