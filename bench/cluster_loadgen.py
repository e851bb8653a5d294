"""``bench/loadgen.py`` for ``bench/cluster_fanout.py``: the same clients, each login
given ``LOGIN_TIMEOUT`` seconds.

Against a cluster, a login (``sso`` → ``identifier`` → ``provision``) now and then gets no
reply at all (seen on short runs of 60 and 2,000 bars: one load generator's logins stuck
for minutes); loadgen.py waits for a reply forever.  Here a login that takes longer is
counted (a line ``login bench<i> hung …``), its socket aborted, and loadgen.py's own retry
(up to 5 attempts) tries it again.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import loadgen  # noqa: E402

LOGIN_TIMEOUT = 20.0
_login = loadgen.Client.login


async def login(self: loadgen.Client) -> None:
    try:
        await asyncio.wait_for(_login(self), LOGIN_TIMEOUT)
    except asyncio.TimeoutError:
        print(f"login {self.username} hung for {LOGIN_TIMEOUT:g} s; tried again", flush=True)
        if self.ws is not None and self.ws.transport is not None:
            self.ws.transport.abort()
        raise


loadgen.Client.login = login  # type: ignore[method-assign]

if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:
        asyncio.run(loadgen.main())
    else:
        uvloop.run(loadgen.main())
