"""One module per ``mf`` subcommand (see training/cli.py)."""
