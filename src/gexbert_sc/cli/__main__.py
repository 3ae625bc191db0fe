"""``python -m gexbert_sc.cli``: the ``gexbert-sc`` command."""

import sys

from . import main

sys.exit(main())
