"""``ucs-admin``: the directory from a shell, through a running UCS or on its store (:mod:`ucs.admin.cli`)."""
