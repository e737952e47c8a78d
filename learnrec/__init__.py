"""learnrec: a streaming, online-learning recommender (the LEARN model).

The components are subpackages: :mod:`learnrec.shared`, :mod:`learnrec.stream`,
:mod:`learnrec.trainer`, :mod:`learnrec.serving`, :mod:`learnrec.demo` and the command line,
:mod:`learnrec.cli`. For the people who use it: :mod:`learnrec.client` (publish events, look
recommendations up; importable without torch) and :mod:`learnrec.testing` (a pytest plugin that
gives a test a running learnrec).

In the repository the components keep their own top-level folders (``shared/``, ``stream/``,
...); the wheel maps them inside this package (``package-dir`` in pyproject.toml). In a source
checkout, the checkout's root is added to this package's path so that ``learnrec.shared`` is
always the ``shared/`` beside this very folder, never another checkout's.
"""

from pathlib import Path

_checkout = Path(__file__).resolve().parent.parent
if (_checkout / "pyproject.toml").is_file() and (_checkout / "shared" / "__init__.py").is_file():
    __path__.append(str(_checkout))
