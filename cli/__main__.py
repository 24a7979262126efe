"""``python -m rnnkit_cli`` runs the same command line as the ``rnnkit`` script."""

from rnnkit_cli.main import main

main()
