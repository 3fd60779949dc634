"""tcpmsg-client: the console a person uses to talk to a tcpmsg server."""
