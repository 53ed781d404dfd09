"""One outbound GET through `wasi:http/outgoing-handler` (world warden:plugin/transformer@0.2.0
plus that import, guests/python/wit-http): the input is `http[s]://host[:port]/path`; the output
is the status and the body on the next line, as the JavaScript and Rust guests answer. Warden
grants no network by default: a refusal is an error naming the host's code
(`request failed: HTTP-request-denied`).

componentize-py generates the bindings; this file waits on them synchronously (one pollable at a
time), which is all a single request needs.
"""

import re
from urllib.parse import urlsplit

import wit_world
from componentize_py_types import Err
from wit_world.imports import outgoing_handler, poll, streams, types

# How much to ask the body stream for at a time; the host caps the total (`max_response_bytes`).
READ_CHUNK = 64 * 1024

# Words that WIT spells in capitals in `error-code` (`HTTP-request-URI-invalid`).
ACRONYMS = {"dns", "tls", "http", "ip", "uri"}


class WitWorld(wit_world.WitWorld):
    def transform(self, input: bytes) -> bytes:
        try:
            url = bytes(input).decode("utf-8").strip()
        except UnicodeDecodeError as error:
            raise Err(f"input is not UTF-8: {error}")
        request = outgoing_request(url)
        try:
            future = outgoing_handler.handle(request, None)
        except Err as error:
            raise Err(f"refused: {error_code(error.value)}")
        with future:
            response = wait_for_response(future)
        with response:
            status = response.status()
            body = read_body(response)
        return f"{status}\n".encode() + body


def outgoing_request(url: str) -> types.OutgoingRequest:
    """A GET for `url`, or Err when it is not an absolute http(s) URL."""
    parts = urlsplit(url)
    schemes = {"http": types.Scheme_Http(), "https": types.Scheme_Https()}
    if parts.scheme not in schemes or not parts.netloc:
        raise Err(f"not an http:// or https:// URL: {url!r}")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    request = types.OutgoingRequest(types.Fields())
    try:
        request.set_method(types.Method_Get())
        request.set_scheme(schemes[parts.scheme])
        request.set_authority(parts.netloc)
        request.set_path_with_query(path)
    except Err:
        raise Err(f"not a valid request target: {url!r}")
    return request


def wait(pollable: poll.Pollable) -> None:
    """Blocks until `pollable` is ready, then drops it (before its parent, as WASI requires)."""
    with pollable:
        poll.poll([pollable])


def wait_for_response(future: types.FutureIncomingResponse) -> types.IncomingResponse:
    """The response's head, or Err with the host's error code (a refusal arrives here)."""
    while (answer := future.get()) is None:
        wait(future.subscribe())
    if isinstance(answer, Err):
        raise Err("the response was already taken")
    if isinstance(answer.value, Err):
        raise Err(f"request failed: {error_code(answer.value.value)}")
    return answer.value.value


def read_body(response: types.IncomingResponse) -> bytes:
    """The whole body, or Err when the stream fails (e.g. past the grant's response cap)."""
    chunks = []
    with response.consume() as body:
        with body.stream() as stream:
            while True:
                try:
                    chunk = stream.read(READ_CHUNK)
                except Err as error:
                    if isinstance(error.value, streams.StreamError_Closed):
                        break
                    with error.value.value as failure:
                        code = types.http_error_code(failure)
                        why = error_code(code) if code is not None else failure.to_debug_string()
                    raise Err(f"reading the body failed: {why}")
                if chunk:
                    chunks.append(chunk)
                else:
                    wait(stream.subscribe())
    return b"".join(chunks)


def error_code(code: types.ErrorCode) -> str:
    """The case's WIT name (`ErrorCode_HttpRequestDenied` -> `HTTP-request-denied`), with its
    payload when it has one."""
    case = type(code).__name__.removeprefix("ErrorCode_")
    words = re.findall(r"[A-Z][a-z0-9]*", case)
    name = "-".join(w.upper() if w.lower() in ACRONYMS else w.lower() for w in words)
    payload = getattr(code, "value", None)
    return f"{name}({payload!r})" if payload is not None else name
