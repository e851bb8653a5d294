"""The ``twistd ucs`` plugin.

Discovery imports this file only: keep it to the one ``ServiceMaker`` line.
Everything heavy lives in :mod:`ucs.tap`, imported when ``twistd ucs`` runs.
"""

from twisted.application.service import ServiceMaker

ucs = ServiceMaker(
    "UCS",
    "ucs.tap",
    "UCS contact-center CTI server (Asterisk AMI, agent bar, Interaction Processor)",
    "ucs",
)
