"""Names of the events on UCS's bus, as plugins import them
(``from events import EVENT_AGENT_STATUS``; ``ucs.addCallback(EVENT, fn)``).

A subscriber is called ``fn(subject, args)``: ``subject`` is the agent, call,
queue or user the event is about, ``args`` a dict of details (for a status
change: ``status``, ``reason``, ``previous``).
"""

EVENT_AGENT_STATUS = "agent.status"          # Agent; status, reason, previous, previous_reason
EVENT_AGENT_LOGIN = "agent.login"            # Agent; session
EVENT_AGENT_LOGOUT = "agent.logout"          # Agent; reason
EVENT_AGENT_SUSPEND = "agent.suspend"        # Agent; queue_id
EVENT_AGENT_RESUME = "agent.resume"          # Agent; queue_id
EVENT_AGENT_DEVICE = "agent.device"          # Agent; line (paired or None)
EVENT_AGENT_WRAPUP = "agent.wrapup"          # Agent; wrapup (extended, held for a call reason, reason saved)
EVENT_AGENT_MISSED = "agent.missed"          # Agent; missed (unseen missed calls), call (the history entry)

EVENT_CALL_NEW = "call.new"                  # Call
EVENT_CALL_RINGING = "call.ringing"          # Call; device
EVENT_CALL_CONNECT = "call.connect"          # Call
EVENT_CALL_HOLD = "call.hold"                # Call
EVENT_CALL_RESUME = "call.resume"            # Call
EVENT_CALL_MUTE = "call.mute"                # Call; party (caller | connected)
EVENT_CALL_UNMUTE = "call.unmute"            # Call; party
EVENT_CALL_TRANSFER = "call.transfer"        # Call; kind, to
EVENT_CALL_HANGUP = "call.hangup"            # Call
EVENT_CALL_CHANGE = "call.change"            # Call: any other change (numbers, names, state)
EVENT_ACCOUNT_CODE = "accountcode.set"       # the call's uniqueid (str); account_code (live or stored call)

EVENT_QUEUE_WAITING = "queue.waiting"        # Queue; waiting (callers in the queue)
EVENT_MEMBER_ADDED = "member.added"          # Member (Asterisk's queue member)
EVENT_MEMBER_CHANGED = "member.changed"      # Member; previous
EVENT_MEMBER_REMOVED = "member.removed"      # Member
EVENT_DEVICE_CHANGED = "device.changed"      # Device (line or trunk: state, registration, address)

EVENT_USER_CHANGE = "user.change"            # User; action (add | edit | delete)
EVENT_CONFIG_CHANGE = "config.change"        # entity; kind, action

EVENT_PBX_RESTARTED = "pbx.restarted"        # None
EVENT_PBX_RESYNCED = "pbx.resynced"          # None
EVENT_SHARED_CHANGE = "shared.change"        # identifier; data
