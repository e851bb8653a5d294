"""Agent status change hook example"""

import time

from constants import AGENT_READY, AGENT_AUX, AGENT_OFFLINE
from error import ProcessingError

UCS_PLUGIN = 'StatusHook'


class StatusHook:
    """Agent status change hook example"""

    def __init__(self, ucs):
        self.ucs = ucs
        self.ucs.agents.addChangeStatusHook(self.hook)

    def stop(self):
        """Called on plugin reload or UCS stop"""
        self.ucs.agents.removeChangeStatusHook()

    def hook(self, agent, new_status, new_reason):
        """Called when agent status is about to change"""

        hour = time.localtime().tm_hour

        if new_status == AGENT_AUX and new_reason == 'Lunch':
            if hour < 11:
                return None, "It's too early for lunch"

            if hour > 17:
                raise ProcessingError("It's time for dinner")

        if agent.status == AGENT_OFFLINE and new_status == AGENT_READY:
            return AGENT_AUX, 'Getting to know the operating instructions'

        return new_status, new_reason
