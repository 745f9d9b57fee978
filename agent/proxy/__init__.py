"""The proxy: Berth's HTTP/1.1 + TLS data plane (uvloop + httptools), driven in-process by the agent."""
