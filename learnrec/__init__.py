"""learnrec's public packages for the people who use it: :mod:`learnrec.client` (publish events,
look recommendations up; importable without torch) and :mod:`learnrec.testing` (a pytest plugin
that gives a test a running learnrec)."""
