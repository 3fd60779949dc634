"""Makes ``twistd tcpmsg`` find tcpmsg's service maker."""

from twisted.application.service import ServiceMaker

TcpmsgServer = ServiceMaker(
    "tcpmsg", "tcpmsg.twistd_plugin", "A TCP message server with channels", "tcpmsg"
)
