"""``python -m stream``: the heritage-audio command line."""

import sys

from stream.cli import main

sys.exit(main())
