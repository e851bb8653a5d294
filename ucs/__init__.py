"""UCS: a contact-center CTI server for Asterisk, built on Twisted."""

__version__ = "0.1.0"
