"""``python -m softmax_cli``: the same as the ``softmax-check`` command."""

from softmax_cli.entry import main

main()
