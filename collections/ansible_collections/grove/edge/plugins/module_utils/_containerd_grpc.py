# Copyright: Grove developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read-only calls to containerd's gRPC API, with the standard library only.

Why not `ctr`: `ctr tasks ls` prints no exit status, and the only ctr command that reveals it
(`ctr tasks delete`) destroys the task. Oakestra's DEAD / COMPLETED distinction needs the exit
status without side effects, and listing every container with its labels in one call keeps
`node_info` fast on workers with many instances. Writes stay with `ctr`.

This is just enough HTTP/2 (RFC 9113) and protobuf to send unary requests whose messages only
hold strings, and to decode the answers. Response headers are not decoded (that would need
HPACK's Huffman table): a call that yields no message is reported as failed.
"""

from __future__ import annotations

import socket
import struct

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FRAME_DATA, FRAME_HEADERS, FRAME_RST_STREAM, FRAME_SETTINGS = 0x0, 0x1, 0x3, 0x4
FRAME_PING, FRAME_GOAWAY, FRAME_WINDOW_UPDATE, FRAME_CONTINUATION = 0x6, 0x7, 0x8, 0x9
FLAG_END_STREAM, FLAG_ACK, FLAG_END_HEADERS, FLAG_PADDED = 0x1, 0x1, 0x4, 0x8
SETTINGS_ENABLE_PUSH, SETTINGS_INITIAL_WINDOW_SIZE = 0x2, 0x4
MAX_WINDOW = 2**31 - 1
DEFAULT_WINDOW = 65535
STREAM_ID = 1

TASK_STATUS = {0: "UNKNOWN", 1: "CREATED", 2: "RUNNING", 3: "STOPPED", 4: "PAUSED", 5: "PAUSING"}


class GrpcError(RuntimeError):
    """The call did not produce an answer; the message says what happened."""


# --- protobuf --------------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_string_field(number: int, text: str) -> bytes:
    data = text.encode("utf-8")
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise GrpcError("truncated protobuf varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def decode_fields(buf: bytes) -> list[tuple[int, object]]:
    """(field number, value) pairs: ints for varints and fixed values, bytes for the rest."""
    fields = []
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: object
        if wire == 0:
            value, pos = _read_varint(buf, pos)
        elif wire == 1:
            value = struct.unpack_from("<Q", buf, pos)[0]
            pos += 8
        elif wire == 2:
            length, pos = _read_varint(buf, pos)
            value = bytes(buf[pos : pos + length])
            if len(value) != length:
                raise GrpcError("truncated protobuf field")
            pos += length
        elif wire == 5:
            value = struct.unpack_from("<I", buf, pos)[0]
            pos += 4
        else:
            raise GrpcError(f"unsupported protobuf wire type {wire}")
        fields.append((number, value))
    return fields


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else ""


def _timestamp(value: object) -> float | None:
    if not isinstance(value, bytes):
        return None
    parts = dict(decode_fields(value))
    seconds, nanos = int(parts.get(1, 0)), int(parts.get(2, 0))  # type: ignore[call-overload]
    if seconds >= 2**63:
        seconds -= 2**64  # int64 in two's complement; Go's zero time is year 1
    if seconds <= 0:
        return None
    return seconds + nanos / 1e9


def decode_container(buf: bytes) -> dict:
    """containerd.services.containers.v1.Container -> plain dict (spec as its JSON text)."""
    container: dict = {
        "id": "",
        "labels": {},
        "image": "",
        "runtime": "",
        "spec": None,
        "snapshotter": "",
        "snapshot_key": "",
        "created_at": None,
    }
    for number, value in decode_fields(buf):
        if number == 1:
            container["id"] = _text(value)
        elif number == 2 and isinstance(value, bytes):
            entry = dict(decode_fields(value))
            container["labels"][_text(entry.get(1, b""))] = _text(entry.get(2, b""))
        elif number == 3:
            container["image"] = _text(value)
        elif number == 4 and isinstance(value, bytes):
            container["runtime"] = _text(dict(decode_fields(value)).get(1, b""))
        elif number == 5 and isinstance(value, bytes):
            # google.protobuf.Any whose value is the OCI runtime spec as JSON
            container["spec"] = _text(dict(decode_fields(value)).get(2, b""))
        elif number == 6:
            container["snapshotter"] = _text(value)
        elif number == 7:
            container["snapshot_key"] = _text(value)
        elif number == 8:
            container["created_at"] = _timestamp(value)
    return container


def decode_process(buf: bytes) -> dict:
    """containerd.v1.types.Process -> plain dict."""
    # containerd fills field 2 ("id") with the container id for init processes; field 1
    # ("container_id") is left empty by the task service of 1.6 and set by later versions.
    process: dict = {"id": "", "pid": 0, "status": "UNKNOWN", "exit_status": 0, "exited_at": None}
    for number, value in decode_fields(buf):
        if number in (1, 2) and _text(value):
            process["id"] = process["id"] or _text(value)
        elif number == 3:
            process["pid"] = int(value)  # type: ignore[call-overload]
        elif number == 4:
            process["status"] = TASK_STATUS.get(int(value), "UNKNOWN")  # type: ignore[call-overload]
        elif number == 9:
            process["exit_status"] = int(value)  # type: ignore[call-overload]
        elif number == 10:
            process["exited_at"] = _timestamp(value)
    return process


# --- HTTP/2 ----------------------------------------------------------------------------------


def _hpack_length(length: int) -> bytes:
    # HPACK integer with a 7-bit prefix and the Huffman bit clear (RFC 7541 5.1, 5.2).
    if length < 127:
        return bytes([length])
    out = bytearray([127])
    length -= 127
    while length >= 128:
        out.append(length % 128 + 128)
        length //= 128
    out.append(length)
    return bytes(out)


def _hpack_literal(name: str, value: str) -> bytes:
    # "Literal Header Field without Indexing -- New Name": needs no shared table state.
    raw_name, raw_value = name.encode("ascii"), value.encode("utf-8")
    return b"\x00" + _hpack_length(len(raw_name)) + raw_name + _hpack_length(len(raw_value)) + raw_value


def _frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + struct.pack(">BBI", kind, flags, stream) + payload


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = sock.recv(size)
        if not chunk:
            raise GrpcError("containerd closed the connection")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _request_bytes(method: str, namespace: str, message: bytes) -> bytes:
    headers = b"".join(
        _hpack_literal(name, value)
        for name, value in (
            (":method", "POST"),
            (":scheme", "http"),
            (":path", method),
            (":authority", "localhost"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            ("containerd-namespace", namespace),
        )
    )
    settings = struct.pack(">HI", SETTINGS_ENABLE_PUSH, 0) + struct.pack(
        ">HI", SETTINGS_INITIAL_WINDOW_SIZE, MAX_WINDOW
    )
    body = b"\x00" + struct.pack(">I", len(message)) + message
    return (
        PREFACE
        + _frame(FRAME_SETTINGS, 0, 0, settings)
        + _frame(FRAME_WINDOW_UPDATE, 0, 0, struct.pack(">I", MAX_WINDOW - DEFAULT_WINDOW))
        + _frame(FRAME_HEADERS, FLAG_END_HEADERS, STREAM_ID, headers)
        + _frame(FRAME_DATA, FLAG_END_STREAM, STREAM_ID, body)
    )


def _unpad(flags: int, payload: bytes) -> bytes:
    if flags & FLAG_PADDED and payload:
        return payload[1 : len(payload) - payload[0]]
    return payload


def _read_response(sock: socket.socket) -> bytes:
    data = bytearray()
    while True:
        header = _recv_exact(sock, 9)
        length = struct.unpack(">I", b"\x00" + header[:3])[0]
        kind, flags, stream = header[3], header[4], struct.unpack(">I", header[5:9])[0] & 0x7FFFFFFF
        payload = _recv_exact(sock, length) if length else b""
        if kind == FRAME_SETTINGS and not flags & FLAG_ACK:
            sock.sendall(_frame(FRAME_SETTINGS, FLAG_ACK, 0))
        elif kind == FRAME_PING and not flags & FLAG_ACK:
            sock.sendall(_frame(FRAME_PING, FLAG_ACK, 0, payload))
        elif kind == FRAME_GOAWAY:
            code = struct.unpack(">I", payload[4:8])[0] if len(payload) >= 8 else -1
            detail = payload[8:].decode("utf-8", "replace")
            raise GrpcError(f"containerd ended the connection (HTTP/2 error {code}: {detail})")
        elif stream == STREAM_ID and kind == FRAME_RST_STREAM:
            code = struct.unpack(">I", payload[:4])[0] if len(payload) >= 4 else -1
            raise GrpcError(f"containerd reset the call (HTTP/2 error {code})")
        elif stream == STREAM_ID and kind == FRAME_DATA:
            data += _unpad(flags, payload)
        if stream == STREAM_ID and kind in (FRAME_DATA, FRAME_HEADERS) and flags & FLAG_END_STREAM:
            return bytes(data)


def _messages(data: bytes) -> list[bytes]:
    messages = []
    pos = 0
    while pos + 5 <= len(data):
        compressed, length = data[pos], struct.unpack(">I", data[pos + 1 : pos + 5])[0]
        if compressed:
            raise GrpcError("containerd sent a compressed message, which was not asked for")
        messages.append(data[pos + 5 : pos + 5 + length])
        pos += 5 + length
    return messages


def call(address: str, namespace: str, method: str, message: bytes = b"", timeout: float = 30.0) -> bytes:
    """One unary gRPC call over containerd's unix socket; returns the response message."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(address)
        except OSError as exc:
            raise GrpcError(f"cannot connect to containerd at {address}: {exc}") from exc
        try:
            sock.sendall(_request_bytes(method, namespace, message))
            data = _read_response(sock)
        except OSError as exc:
            raise GrpcError(f"{method}: {exc}") from exc
    finally:
        sock.close()
    messages = _messages(data)
    if not messages:
        raise GrpcError(f"{method} failed: containerd answered with an error status")
    return messages[0]


# --- the calls Grove needs -------------------------------------------------------------------


def list_containers(address: str, namespace: str, filters: list[str] | None = None) -> list[dict]:
    request = b"".join(encode_string_field(1, item) for item in filters or [])
    answer = call(address, namespace, "/containerd.services.containers.v1.Containers/List", request)
    return [
        decode_container(value)
        for number, value in decode_fields(answer)
        if number == 1 and isinstance(value, bytes)
    ]


def list_tasks(address: str, namespace: str) -> dict[str, dict]:
    """Init processes of all tasks in the namespace, by container id."""
    answer = call(address, namespace, "/containerd.services.tasks.v1.Tasks/List")
    tasks = {}
    for number, value in decode_fields(answer):
        if number == 1 and isinstance(value, bytes):
            process = decode_process(value)
            tasks[process["id"]] = process
    return tasks


def version(address: str) -> dict[str, str]:
    # The version service ignores the namespace; any valid one will do.
    answer = dict(decode_fields(call(address, "default", "/containerd.services.version.v1.Version/Version")))
    return {"version": _text(answer.get(1, b"")), "revision": _text(answer.get(2, b""))}


def list_images(address: str, namespace: str, filters: list[str] | None = None) -> list[str]:
    """Names of the images that match the filters."""
    request = b"".join(encode_string_field(1, item) for item in filters or [])
    answer = call(address, namespace, "/containerd.services.images.v1.Images/List", request)
    return [
        _text(dict(decode_fields(value)).get(1, b""))
        for number, value in decode_fields(answer)
        if number == 1 and isinstance(value, bytes)
    ]
