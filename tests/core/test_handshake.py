"""The opening handshake without sockets: request/response building and checking, HTTP head limits, URIs,
header list parsing."""

from __future__ import annotations

import pytest

from wsstream.core import handshake
from wsstream.core.deflate import Deflate
from wsstream.core.headers import format_extension, parse_extension_list, parse_token_list
from wsstream.core.http11 import Headers, HeadParser, Request, Response
from wsstream.core.uri import parse_uri
from wsstream.exceptions import HandshakeError, InvalidStatus, InvalidURI


def test_accept_key_matches_rfc_example() -> None:
    assert handshake.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def roundtrip_request(**kwargs: object) -> tuple[Request, str]:
    key = handshake.generate_key()
    request = handshake.build_request(parse_uri("ws://example.test:8080/chat?x=1"), key, **kwargs)  # type: ignore[arg-type]
    parser = HeadParser()
    assert parser.feed(request.serialize())
    return parser.request(), key


def test_client_request_is_accepted_by_the_server_checks() -> None:
    request, key = roundtrip_request(subprotocols=["chat", "superchat"], origin="http://o.test", user_agent="t/1")
    assert request.path == "/chat?x=1"
    assert request.headers["Host"] == "example.test:8080"
    assert request.headers["Origin"] == "http://o.test"
    assert handshake.check_request(request) == key
    assert handshake.offered_subprotocols(request) == ["chat", "superchat"]


def test_server_response_is_accepted_by_the_client_checks() -> None:
    request, key = roundtrip_request(subprotocols=["chat"])
    response = handshake.build_response(handshake.check_request(request), "chat")
    parser = HeadParser()
    assert parser.feed(response.serialize())
    accepted = handshake.check_response(parser.response(), key, subprotocols=["chat"])
    assert accepted.subprotocol == "chat" and accepted.deflate is None


def test_userinfo_becomes_basic_auth_and_extra_headers_are_added() -> None:
    key = handshake.generate_key()
    request = handshake.build_request(parse_uri("ws://al%40ice:s3cret@h.test/"), key, headers={"X-Token": "t"})
    assert request.headers["Authorization"] == "Basic YWxAaWNlOnMzY3JldA=="
    assert request.headers["X-Token"] == "t"
    with pytest.raises(ValueError):
        handshake.build_request(parse_uri("ws://h.test/"), key, headers={"Sec-WebSocket-Key": "x"})


def test_header_injection_is_refused() -> None:
    with pytest.raises(ValueError):
        Headers({"X-A": "a\r\nX-Evil: 1"})
    with pytest.raises(ValueError):
        Headers({"Bad Name": "v"})


@pytest.mark.parametrize(
    ("name", "value", "status"),
    [
        ("Upgrade", None, 426),
        ("Connection", None, 400),
        ("Sec-WebSocket-Version", "12", 426),
        ("Sec-WebSocket-Key", None, 400),
        ("Sec-WebSocket-Key", "c2hvcnQ=", 400),
        ("Host", None, 400),
    ],
)
def test_bad_requests_are_refused_with_a_status(name: str, value: str | None, status: int) -> None:
    request, _ = roundtrip_request()
    del request.headers[name]
    if value is not None:
        request.headers.add(name, value)
    with pytest.raises(HandshakeError) as info:
        handshake.check_request(request)
    assert info.value.status == status  # type: ignore[attr-defined]


def test_version_8_is_accepted() -> None:
    request, key = roundtrip_request(protocol_version=8)
    assert handshake.check_request(request) == key


def test_post_is_refused() -> None:
    request, _ = roundtrip_request()
    request.method = "POST"
    with pytest.raises(HandshakeError):
        handshake.check_request(request)


def test_client_rejects_bad_responses() -> None:
    _, key = roundtrip_request()
    good = handshake.build_response(key)
    with pytest.raises(InvalidStatus) as info:
        handshake.check_response(Response(403, body=b"no"), key)
    assert info.value.response.status == 403
    bad_accept = handshake.build_response(handshake.generate_key())
    with pytest.raises(HandshakeError, match="Accept"):
        handshake.check_response(bad_accept, key)
    unasked_protocol = handshake.build_response(key, "chat")
    with pytest.raises(HandshakeError, match="did not offer"):
        handshake.check_response(unasked_protocol, key)
    unasked_extension = handshake.build_response(key, None, "permessage-deflate")
    with pytest.raises(HandshakeError, match="did not offer"):
        handshake.check_response(unasked_extension, key)
    no_upgrade = Response(101, [(n, v) for n, v in good.headers.items() if n != "Upgrade"])
    with pytest.raises(HandshakeError, match="Upgrade"):
        handshake.check_response(no_upgrade, key)


def test_deflate_negotiation_through_the_handshake() -> None:
    request, key = roundtrip_request(extensions=Deflate().client_offer())
    extension, codec = handshake.negotiate_extensions(request, Deflate())
    assert extension is not None and codec is not None
    response = handshake.build_response(key, None, extension)
    accepted = handshake.check_response(response, key, deflate=Deflate())
    assert accepted.deflate is not None and accepted.extensions == [extension]
    # a server without compression ignores the offer
    assert handshake.negotiate_extensions(request, None) == (None, None)


def test_subprotocol_selection_follows_server_preference() -> None:
    assert handshake.select_subprotocol(["a", "b"], ["b", "a"]) == "b"
    assert handshake.select_subprotocol(["a"], ["c"]) is None
    assert handshake.select_subprotocol([], ["c"]) is None


# -------------------------------------------------------------------- HTTP head parser


def test_head_parser_incremental_and_leftover() -> None:
    data = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x02hi"
    parser = HeadParser()
    for i in range(len(data) - 5):
        assert not parser.feed(data[i : i + 1])
    assert parser.feed(data[len(data) - 5 :])
    assert parser.leftover == b"\x81\x02hi"
    response = parser.response()
    assert response.status == 101 and response.headers["upgrade"] == "websocket"


def test_head_parser_limits() -> None:
    parser = HeadParser(max_header_count=3)
    with pytest.raises(HandshakeError) as info:
        parser.feed(b"GET / HTTP/1.1\r\n" + b"A: b\r\n" * 10)
    assert info.value.too_large  # type: ignore[attr-defined]
    parser = HeadParser(max_line_size=100)
    with pytest.raises(HandshakeError):
        parser.feed(b"GET /" + b"x" * 200)  # refused before the line even ends
    with pytest.raises(HandshakeError):
        HeadParser().feed(b"GET / HTTP/1.1\nHost: x\n\n")  # bare LF


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.0\r\nHost: x\r\n\r\n",
        b"GET /\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nNoColon\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
    ],
)
def test_malformed_requests(head: bytes) -> None:
    parser = HeadParser()
    with pytest.raises(HandshakeError):
        assert parser.feed(head)
        parser.request()


def test_malformed_status_line() -> None:
    parser = HeadParser()
    assert parser.feed(b"HTTP/1.1 1O1 nope\r\n\r\n")
    with pytest.raises(HandshakeError):
        parser.response()


def test_refusal_response_serialisation() -> None:
    data = Response(403, {"X-Why": "nope"}, "forbidden").serialize()
    assert data.startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert b"Content-Length: 9\r\n" in data and data.endswith(b"\r\n\r\nforbidden")


# -------------------------------------------------------------------- header lists


def test_extension_list_parsing() -> None:
    value = 'permessage-deflate; client_max_window_bits; server_max_window_bits="10", permessage-deflate, x-foo'
    assert parse_extension_list([value]) == [
        ("permessage-deflate", [("client_max_window_bits", None), ("server_max_window_bits", "10")]),
        ("permessage-deflate", []),
        ("x-foo", []),
    ]
    assert format_extension("permessage-deflate", [("a", None), ("b", "1")]) == "permessage-deflate; a; b=1"


@pytest.mark.parametrize("value", ["permessage-deflate; =1", 'x; a="b c"', 'x; a="unterminated', "x y", "x;;"])
def test_extension_list_errors(value: str) -> None:
    with pytest.raises(HandshakeError):
        parse_extension_list([value])


def test_extension_parser_is_linear_on_hostile_input() -> None:
    # A long run of separators must be rejected or parsed quickly, never backtrack (no regex is involved).
    hostile = "a" + ";b=c" * 20000 + "," * 20000
    assert len(parse_extension_list([hostile])[0][1]) == 20000


def test_token_lists() -> None:
    assert parse_token_list(["keep-alive, Upgrade", " ,x"]) == ["keep-alive", "Upgrade", "x"]
    with pytest.raises(HandshakeError):
        parse_token_list(["a b"])


# -------------------------------------------------------------------- URIs


@pytest.mark.parametrize(
    ("uri", "secure", "host", "port", "resource"),
    [
        ("ws://h.test", False, "h.test", 80, "/"),
        ("wss://h.test/a?b=c", True, "h.test", 443, "/a?b=c"),
        ("http://h.test:81/x", False, "h.test", 81, "/x"),
        ("https://[::1]:9443/", True, "::1", 9443, "/"),
    ],
)
def test_uri_parsing(uri: str, secure: bool, host: str, port: int, resource: str) -> None:
    parsed = parse_uri(uri)
    assert (parsed.secure, parsed.host, parsed.port, parsed.resource_name) == (secure, host, port, resource)


def test_unix_uri() -> None:
    parsed = parse_uri("ws+unix:///tmp/s.sock:/chat?x=1")
    assert parsed.unix_path == "/tmp/s.sock" and parsed.resource_name == "/chat?x=1"
    assert parse_uri("ws+unix:///tmp/s.sock").resource_name == "/"


def test_host_header_omits_default_port_and_brackets_ipv6() -> None:
    assert parse_uri("ws://h.test:80/").host_header == "h.test"
    assert parse_uri("wss://[::1]:8443/").host_header == "[::1]:8443"


@pytest.mark.parametrize("uri", ["ftp://h.test/", "ws://h.test/#frag", "ws:///path", "ws://h.test:99999/", "h.test"])
def test_invalid_uris(uri: str) -> None:
    with pytest.raises(InvalidURI):
        parse_uri(uri)
