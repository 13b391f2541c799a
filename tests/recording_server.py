"""A stand-in AWS endpoint for tests: records every request and answers with canned replies.

Point ``AWS_ENDPOINT_URL`` (or ``--endpoint-url``) at ``server.url`` and every boto3 call lands here
instead of AWS or LocalStack; ``server.operations`` then says exactly which calls were made
(``"cloudformation.DescribeStacks"``, ``"codebuild.ListProjects"``, …), so a test can assert that a
command made none, or only the ones it must. A request nobody planned for gets a 400 error, which
botocore does not retry.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs
from xml.sax.saxutils import escape


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    service: str  # from the SigV4 credential scope; "" for unsigned requests
    action: str  # X-Amz-Target's operation (JSON protocols) or Action= (query protocols)
    body: bytes
    amz_target: str = ""

    @property
    def operation(self) -> str:
        return f"{self.service}.{self.action}" if self.service else f"{self.method} {self.path}"

    @property
    def json_protocol(self) -> bool:
        return bool(self.amz_target)


Reply = tuple[int, str, bytes]  # status, content type, body
Route = Callable[[Request], "Reply | None"]

_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")


def error_reply(request: Request, code: str, message: str, status: int = 400) -> Reply:
    """An AWS error in the request's protocol: JSON for X-Amz-Target APIs, XML for query APIs."""
    if request.json_protocol:
        return status, "application/x-amz-json-1.1", json.dumps({"__type": code, "message": message}).encode()
    xml = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{escape(message)}</Message></Error>"
           "<RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>")
    return status, "text/xml", xml.encode()


def json_reply(data: dict) -> Reply:
    return 200, "application/x-amz-json-1.1", json.dumps(data).encode()


class RecordingServer:
    """``with RecordingServer(route) as server:`` — ``route(request)`` returns a Reply, or None for the
    default 400 ``UnexpectedRequest``."""

    def __init__(self, route: Route | None = None, host: str = "127.0.0.1", name: str | None = None):
        """Listen on ``host``; ``url`` names it ``name`` if given (a host name that resolves to ``host``)."""
        self.route = route or (lambda request: None)
        self.requests: list[Request] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._answer()

            def do_POST(self) -> None:  # noqa: N802
                self._answer()

            def do_PUT(self) -> None:  # noqa: N802
                self._answer()

            def do_HEAD(self) -> None:  # noqa: N802
                self._answer()

            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                scope = _SCOPE.search(self.headers.get("Authorization", ""))
                target = self.headers.get("X-Amz-Target", "")
                action = target.rpartition(".")[2] if target else parse_qs(body.decode()).get("Action", [""])[0]
                request = Request(self.command, self.path, scope.group(1) if scope else "", action, body, target)
                recorder.requests.append(request)
                reply = recorder.route(request) or error_reply(request, "UnexpectedRequest",
                                                               f"the recording server has no reply for {request}")
                status, content_type, payload = reply
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            def log_message(self, *args) -> None:  # keep the test output clean
                pass

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{name or host}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def operations(self) -> list[str]:
        return [request.operation for request in self.requests]

    def __enter__(self) -> RecordingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.shutdown()
        self._server.server_close()
