"""Offers UCS the greeter plugin.

UCS finds this module with ``twisted.plugin.getPlugins(IUCSPlugin,
twisted.plugins)``: keep it to this one line, the plugin's code is imported
only when UCS loads it.
"""

from ucs.plugins.interfaces import UCSPlugin

greeter = UCSPlugin("greeter", "ucs_greeter.plugin:Greeter", "Greets agents when they log in")
