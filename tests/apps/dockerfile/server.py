"""A standard-library web server: the app's own Dockerfile runs it."""

import http.server
import os


class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"{os.environ.get('GREETING', 'hello')} from a Dockerfile\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


port = int(os.environ.get("PORT", "5000"))
http.server.ThreadingHTTPServer(("0.0.0.0", port), Hello).serve_forever()
