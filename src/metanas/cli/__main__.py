"""``python -m metanas.cli``: the same as the ``metanas`` command."""

from metanas.cli import main

main()
