"""``python -m ucs.admin`` is ``ucs-admin``."""

from ucs.admin.cli import main

main()
