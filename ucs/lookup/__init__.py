"""Caller lookup: who is calling, from a static table or a CRM's JSON API.

- :mod:`ucs.lookup.sources`: :class:`StaticSource`, :class:`HTTPSource` and
  :func:`build_source` (one ``[[lookup.sources]]`` table → a source) and
  :func:`build_sources` (all of them, errors naming the entry and key);
- :mod:`ucs.lookup.service`: :class:`LookupService` (sources in order, then
  the plugins' lookup transformer, seed 000 v4.39.0);
- :mod:`ucs.lookup.calls`: :class:`CallerLookup`, the call-tracker observer
  that fills incoming calls' ``name``, ``external_id`` and ``data``;
- :mod:`ucs.lookup.api`: the ``lookup.number`` API method.
"""

from ucs.lookup.service import LookupResult, LookupService
from ucs.lookup.sources import HTTPSource, StaticSource, build_source, build_sources

__all__ = ["HTTPSource", "LookupResult", "LookupService", "StaticSource", "build_source", "build_sources"]
