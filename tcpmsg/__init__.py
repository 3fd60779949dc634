"""tcpmsg: a self-hosted TCP message server and console client built on Twisted.

The modules directly in this package are the domain core: users, channels and
inboxes. They know nothing of sockets, bytes or JSON; the front ends live in
``tcpmsg.protocols``.
"""

__version__ = "0.1.0"
