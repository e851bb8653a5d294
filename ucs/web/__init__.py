"""The agent bar's web side: the WebSocket API, ``operator.js``, the demo CRM page.

:class:`WebService` (``ucs.web.service``) is what the container builds; the
message format is in docs/agent-bar.md.
"""

from ucs.web.options import WebOptions
from ucs.web.service import BAR_VERSION, WebService

__all__ = ["BAR_VERSION", "WebOptions", "WebService"]
