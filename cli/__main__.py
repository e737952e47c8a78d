"""``python -m learnrec.cli``: the ``learnrec`` command."""

import sys

from learnrec.cli.main import main

sys.exit(main())
