"""The ``learnrec`` command line (:mod:`learnrec.cli.main`): it depends on the components, and no
component depends on it."""
