"""`python -m imagehub.cli`."""

from __future__ import annotations

import sys

from imagehub.cli import main

sys.exit(main())
