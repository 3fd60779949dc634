"""Twisted Words as a benchmark peer: an IRC server on $PORT (127.0.0.1) that anyone may use.

Stock ``twistd words`` creates no channel on JOIN and logs users in through a
cred checker; for the benchmark the realm creates channels on request and the
checker accepts any name and password. Nothing else is changed.
"""

import os

from twisted.application import service, strports
from twisted.cred import checkers, credentials, portal
from twisted.internet import defer
from twisted.words import service as words
from zope.interface import implementer


@implementer(checkers.ICredentialsChecker)
class AnyoneMayLogIn:
    credentialInterfaces = (credentials.IUsernamePassword,)

    def requestAvatarId(self, credentials):
        return defer.succeed(credentials.username)


realm = words.InMemoryWordsRealm("bench")
realm.createGroupOnRequest = True
factory = words.IRCFactory(realm, portal.Portal(realm, [AnyoneMayLogIn()]))
application = service.Application("words-bench")
listen = f"tcp:{os.environ['PORT']}:interface=127.0.0.1"
strports.service(listen, factory).setServiceParent(application)
