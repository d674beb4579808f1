"""One module per ``mf`` subcommand (see mf_training/cli.py)."""
