"""``python -m dagsmith`` is the ``dagsmith`` command."""

from dagsmith.cli.front import main

main()
