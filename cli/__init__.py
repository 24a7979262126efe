"""The ``rnnkit`` command line (installed as the ``rnnkit_cli`` package).

One typer app per subcommand module, combined in :mod:`rnnkit_cli.main`. Each command only parses
options into typed config and calls the library; tests call the library directly.
"""
