"""A keep-alive HTTP/1.1 backend in its own process (so a test can kill -9 it).

GET /health -> 200 ok; anything else -> 200 JSON {"backend": NAME, "path": ...}.
Usage: http_backend.py PORT NAME   (PORT 0 picks one; prints "ready PORT")
"""

import http.server
import json
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = b"ok" if self.path == "/health" else json.dumps({"backend": sys.argv[2], "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
print(f"ready {server.server_address[1]}", flush=True)
server.serve_forever()
