"""``python -m ucs.config sample|markdown|check FILE``: runs :func:`ucs.config.render.main`.

A package runs its ``__main__`` module under ``-m``; the command itself lives
in :mod:`ucs.config.render`, importable without running it.
"""

from __future__ import annotations

import sys

from ucs.config.render import main

sys.exit(main())
