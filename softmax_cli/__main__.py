"""``python -m softmax_cli``: the same as the ``softmax-check`` command."""

from softmax_cli.cli import main

main()
