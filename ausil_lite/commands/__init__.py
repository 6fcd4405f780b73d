"""One module per ``ausil-lite`` subcommand; see :mod:`ausil_lite.cli`."""
