"""Shared data change hook example"""

from error import ProcessingError

UCS_PLUGIN = 'SharedDataHook'


class SharedDataHook:
    """Shared data change hook example"""

    def __init__(self, ucs):
        self.ucs = ucs
        self.ucs.shared.addChangeHook('agent_emails', self.hook)

    def stop(self):
        """Called on plugin reload or UCS stop"""
        self.ucs.shared.removeChangeHook('agent_emails')

    def hook(self, identifier, old_data, new_data):
        """Called when new shared data are about to change"""

        if not isinstance(new_data, dict):
            raise ProcessingError('Only associative array is accepted')

        data = {}
        username2id = {
            username: user_id
            for user_id, username
            in self.ucs.tree.getUsers('username').items()
        }
        for username, count in new_data.items():
            user_id = username2id.get(username)
            if user_id:
                data[user_id] = count
                old_count = old_data.get(user_id)
                if old_count is not None:
                    self.ucs.log.dbug('User ID %d email count changed from %s to %s', user_id, old_count, count)
            else:
                self.ucs.log.warn('Unknown username: %s', username)

        return data
