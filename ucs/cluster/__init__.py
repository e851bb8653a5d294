"""Several UCS nodes on one Asterisk and one store (issue 20; docs/cluster.md).

- :mod:`ucs.cluster.lockconn`, :mod:`ucs.cluster.election`: which node owns the
  AMI link (a PostgreSQL advisory lock on a session of its own);
- :mod:`ucs.cluster.aio`: nats-py's asyncio beside Twisted;
- :mod:`ucs.cluster.codec`, :mod:`ucs.cluster.replica`: the domain events as
  JSON, and the model every node keeps from them;
- :mod:`ucs.cluster.stream`, :mod:`ucs.cluster.commands`: the events and the
  snapshot on NATS JetStream, commands to the owner by request/reply;
- :mod:`ucs.cluster.node`: the service that puts them together behind
  ``[cluster]`` (the container installs it only when ``cluster.enabled``).

Nothing here is imported when ``[cluster]`` is off.
"""
