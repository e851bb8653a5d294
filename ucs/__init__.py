"""UCS: a contact-center CTI server for Asterisk, built on Twisted."""

#: One version for the server and the agent bar it serves: the seed's (002) feature tags.
#: The bar ships what the seed tags up to v4.59.0, so both are 4.59.0; the bar's
#: ``onConnect`` reports it, the server's hello, ``/health`` and the Interaction
#: Processor too.  A release that adds a seed feature moves the minor; a fix the patch.
__version__ = "4.59.0"
