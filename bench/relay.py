"""A bare Twisted relay: the floor this machine sets for any Twisted chat server.

Not a chat server and not a peer. It answers the load generator's tcpmsg lines
with fixed replies and passes every line said to every other member, with no
protocol work: no JSON, no names, no limits. What it does is what the issue
names as the fast way for Twisted: TCP_NODELAY, everything a member is owed in
one reactor turn gathered into one write, sent straight to the socket where
Twisted holds nothing queued. The harness measures it beside the servers, so
each run shows how far tcpmsg's own work sets it from Twisted's floor.

    python bench/relay.py PORT
"""

from __future__ import annotations

import sys

from twisted.internet import reactor
from twisted.internet.protocol import Factory
from twisted.protocols.basic import LineReceiver

members: list[Relay] = []
owed: dict[Relay, list[bytes]] = {}


def flush() -> None:
    # Reads Twisted's write buffer (dataBuffer, _tempDataLen) to send straight to the
    # socket only when nothing is queued: a benchmark's shortcut, as tcpmsg's outbox.
    turn = list(owed.items())
    owed.clear()
    for member, lines in turn:
        data = lines[0] if len(lines) == 1 else b"".join(lines)
        transport = member.transport
        sent = 0
        if not transport.dataBuffer and not transport._tempDataLen:
            # try/except, not contextlib.suppress: no context manager per member per turn.
            try:
                sent = transport.socket.send(data)
            except OSError:
                sent = 0  # full, or broken: Twisted's write finds out which
        if sent < len(data):
            transport.write(data[sent:])


class Relay(LineReceiver):
    delimiter = b"\n"

    def connectionMade(self) -> None:
        self.transport.setTcpNoDelay(True)

    def connectionLost(self, reason: object = None) -> None:
        if self in members:
            members.remove(self)
        owed.pop(self, None)

    def lineReceived(self, line: bytes) -> None:
        if b'"say"' in line:
            said = b'{"event":"said",' + line[1:] + b"\n"
            if not owed:
                reactor.callLater(0, flush)
            for member in members:
                if member is not self:
                    lines = owed.get(member)
                    if lines is None:
                        owed[member] = [said]
                    else:
                        lines.append(said)
        elif b'"hello"' in line:
            self.transport.write(b'{"reply":"hello"}\n')
        elif b'"create"' in line:
            members.append(self)
            self.transport.write(b'{"reply":"create"}\n')
        elif b'"join"' in line:
            members.append(self)
            self.transport.write(b'{"reply":"join"}\n')
        elif b'"quit"' in line:
            self.transport.write(b'{"reply":"quit"}\n')
            self.transport.loseConnection()


if __name__ == "__main__":
    reactor.listenTCP(int(sys.argv[1]), Factory.forProtocol(Relay), interface="127.0.0.1")
    reactor.run()
