"""Subcommands of the ``learnrec`` CLI that belong to no single component."""
