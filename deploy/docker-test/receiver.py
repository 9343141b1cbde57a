"""The webhook receiver of ``make docker-test``: an HTTPS server in its own container.

Answers every POST with 204 and prints it as one JSON line (headers and the raw body in
base64) on stdout, where ``deploy/docker_test.py`` reads it with ``docker compose logs`` and
verifies the signature. Standard library only; runs in the application image.
"""

from __future__ import annotations

import argparse
import base64
import json
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY_BYTES = 1024 * 1024


class Handler(BaseHTTPRequestHandler):
    """Records POSTs; everything else is a 404."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        """Print the request as one JSON line, then answer 204."""
        length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY_BYTES)
        body = self.rfile.read(length)
        record = {
            "path": self.path,
            "headers": {name.lower(): value for name, value in self.headers.items()},
            "body": base64.b64encode(body).decode(),
        }
        print(json.dumps(record), flush=True)
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Only the JSON lines go to stdout; the access log goes to stderr."""
        sys.stderr.write(f"receiver: {format % args}\n")


def main() -> None:
    """Serve HTTPS on ``--port`` with ``--cert``/``--key`` until stopped."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    args = parser.parse_args()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    server = ThreadingHTTPServer(("0.0.0.0", args.port), Handler)  # noqa: S104 (its own container)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(json.dumps({"listening": args.port}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
