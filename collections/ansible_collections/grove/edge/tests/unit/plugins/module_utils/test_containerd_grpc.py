"""The minimal gRPC client of module_utils/_containerd_grpc.py: protobuf and HTTP/2 framing.

The HTTP/2 side runs against a small server on a real unix socket that answers the way
containerd's grpc-go server does (SETTINGS, PING, headers, DATA in pieces, trailers).
"""

import socket
import struct
import threading

import pytest
from ansible_collections.grove.edge.plugins.module_utils import _containerd_grpc as grpc


def varint_field(number, value):
    return grpc._varint(number << 3) + grpc._varint(value)


def bytes_field(number, data):
    return grpc._varint(number << 3 | 2) + grpc._varint(len(data)) + data


def test_varints_round_trip():
    for value in (0, 1, 127, 128, 300, 2**32 - 1, 2**63 + 5):
        decoded, end = grpc._read_varint(grpc._varint(value), 0)
        assert decoded == value
        assert end == len(grpc._varint(value))


def test_string_fields_encode_as_protobuf():
    assert grpc.encode_string_field(1, "ab") == b"\x0a\x02ab"
    assert grpc.decode_fields(grpc.encode_string_field(3, "é")) == [(3, "é".encode())]


def test_truncated_messages_are_errors():
    with pytest.raises(grpc.GrpcError):
        grpc.decode_fields(b"\x0a\x05ab")


def test_container_decoding():
    spec = b'{"process": {"args": ["sh"]}}'
    message = (
        bytes_field(1, b"app.ns.web.ns.instance.1")
        + bytes_field(2, bytes_field(1, b"grove.service") + bytes_field(2, b"app.ns.web.ns"))
        + bytes_field(2, bytes_field(1, b"grove.instance") + bytes_field(2, b"1"))
        + bytes_field(3, b"docker.io/library/nginx:latest")
        + bytes_field(4, bytes_field(1, b"io.containerd.runc.v2"))
        + bytes_field(
            5,
            bytes_field(1, b"types.containerd.io/opencontainers/runtime-spec/1/Spec") + bytes_field(2, spec),
        )
        + bytes_field(6, b"overlayfs")
        + bytes_field(7, b"app.ns.web.ns.instance.1")
        + bytes_field(8, varint_field(1, 1_700_000_000) + varint_field(2, 500_000_000))
    )
    container = grpc.decode_container(message)
    assert container == {
        "id": "app.ns.web.ns.instance.1",
        "labels": {"grove.service": "app.ns.web.ns", "grove.instance": "1"},
        "image": "docker.io/library/nginx:latest",
        "runtime": "io.containerd.runc.v2",
        "spec": spec.decode(),
        "snapshotter": "overlayfs",
        "snapshot_key": "app.ns.web.ns.instance.1",
        "created_at": 1_700_000_000.5,
    }


def test_process_decoding_with_exit_status_and_go_zero_time():
    go_zero_seconds = -62135596800 + 2**64  # int64 on the wire
    running = grpc.decode_process(
        bytes_field(2, b"box")
        + varint_field(3, 4242)
        + varint_field(4, 2)
        + bytes_field(10, varint_field(1, go_zero_seconds))
    )
    assert running == {"id": "box", "pid": 4242, "status": "RUNNING", "exit_status": 0, "exited_at": None}
    stopped = grpc.decode_process(
        bytes_field(1, b"box")
        + varint_field(4, 3)
        + varint_field(9, 137)
        + bytes_field(10, varint_field(1, 1_700_000_000))
    )
    assert stopped["id"] == "box"
    assert stopped["status"] == "STOPPED"
    assert stopped["exit_status"] == 137
    assert stopped["exited_at"] == 1_700_000_000


def test_hpack_lengths_use_a_seven_bit_prefix():
    assert grpc._hpack_length(10) == b"\x0a"
    assert grpc._hpack_length(126) == b"\x7e"
    assert grpc._hpack_length(127) == b"\x7f\x00"
    assert grpc._hpack_length(1337) == b"\x7f\xba\x09"


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + struct.pack(">BBI", kind, flags, stream) + payload


def read_frame(conn):
    header = b""
    while len(header) < 9:
        chunk = conn.recv(9 - len(header))
        if not chunk:
            return None
        header += chunk
    length = struct.unpack(">I", b"\x00" + header[:3])[0]
    payload = b""
    while len(payload) < length:
        payload += conn.recv(length - len(payload))
    return header[3], header[4], struct.unpack(">I", header[5:9])[0], payload


def hpack_literals(block):
    """Decode the header block our client sends (literal, never-indexed-table, raw strings only)."""
    headers, pos = {}, 0
    while pos < len(block):
        assert block[pos] == 0
        pos += 1
        values = []
        for _part in range(2):
            length = block[pos]
            pos += 1
            assert length < 127  # all our test strings are short
            values.append(block[pos : pos + length].decode())
            pos += length
        headers[values[0]] = values[1]
    return headers


class FakeContainerd:
    """Answers one call on a unix socket; records what the client sent."""

    def __init__(self, path, replies):
        self.replies = replies
        self.received = []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(1)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        conn, _addr = self.server.accept()
        with conn:
            preface = conn.recv(len(grpc.PREFACE), socket.MSG_WAITALL)
            assert preface == grpc.PREFACE
            # Client settings, window update, headers, data.
            for _frame in range(4):
                self.received.append(read_frame(conn))
            conn.sendall(b"".join(self.replies))
            while True:
                got = read_frame(conn)
                if got is None:
                    break
                self.received.append(got)

    def close(self):
        self.thread.join(timeout=5)
        self.server.close()


def grpc_message(payload):
    return b"\x00" + struct.pack(">I", len(payload)) + payload


def test_a_call_sends_a_grpc_request_and_assembles_the_answer(tmp_path):
    answer = bytes_field(1, bytes_field(2, b"box") + varint_field(4, 3) + varint_field(9, 3))
    body = grpc_message(answer)
    cut = len(body) // 2
    padded = bytes([3]) + body[cut:] + b"\x00\x00\x00"
    fake = FakeContainerd(
        tmp_path / "sock",
        [
            frame(grpc.FRAME_SETTINGS, 0, 0, struct.pack(">HI", 0x3, 100)),
            frame(grpc.FRAME_PING, 0, 0, b"12345678"),
            frame(grpc.FRAME_HEADERS, grpc.FLAG_END_HEADERS, 1, b"\x88"),  # :status 200 (indexed)
            frame(grpc.FRAME_DATA, 0, 1, body[:cut]),
            frame(grpc.FRAME_DATA, grpc.FLAG_PADDED, 1, padded),
            frame(grpc.FRAME_HEADERS, grpc.FLAG_END_HEADERS | grpc.FLAG_END_STREAM, 1, b"\x40\x00"),
        ],
    )
    tasks = grpc.list_tasks(str(tmp_path / "sock"), "grove")
    fake.close()
    assert tasks == {"box": {"id": "box", "pid": 0, "status": "STOPPED", "exit_status": 3, "exited_at": None}}
    settings, window, headers, data = fake.received[:4]
    assert settings[0] == grpc.FRAME_SETTINGS
    assert window[0] == grpc.FRAME_WINDOW_UPDATE
    assert headers[:3] == (grpc.FRAME_HEADERS, grpc.FLAG_END_HEADERS, 1)
    sent = hpack_literals(headers[3])
    assert sent[":path"] == "/containerd.services.tasks.v1.Tasks/List"
    assert sent["content-type"] == "application/grpc"
    assert sent["containerd-namespace"] == "grove"
    assert data[:3] == (grpc.FRAME_DATA, grpc.FLAG_END_STREAM, 1)
    assert data[3] == grpc_message(b"")
    later = fake.received[4:]
    assert (grpc.FRAME_SETTINGS, grpc.FLAG_ACK, 0, b"") in later
    assert (grpc.FRAME_PING, grpc.FLAG_ACK, 0, b"12345678") in later


def test_an_answer_without_message_is_an_error(tmp_path):
    fake = FakeContainerd(
        tmp_path / "sock",
        [frame(grpc.FRAME_HEADERS, grpc.FLAG_END_HEADERS | grpc.FLAG_END_STREAM, 1, b"\x88")],
    )
    with pytest.raises(grpc.GrpcError, match="answered with an error status"):
        grpc.list_containers(str(tmp_path / "sock"), "grove", ['id=="x'])
    fake.close()
    sent = hpack_literals(fake.received[2][3])
    assert sent[":path"] == "/containerd.services.containers.v1.Containers/List"
    assert fake.received[3][3] == grpc_message(grpc.encode_string_field(1, 'id=="x'))


def test_goaway_is_reported_with_its_reason(tmp_path):
    fake = FakeContainerd(
        tmp_path / "sock",
        [frame(grpc.FRAME_GOAWAY, 0, 0, struct.pack(">II", 0, 1) + b"protocol trouble")],
    )
    with pytest.raises(grpc.GrpcError, match="HTTP/2 error 1: protocol trouble"):
        grpc.version(str(tmp_path / "sock"))
    fake.close()


def test_no_containerd_is_a_clear_error(tmp_path):
    with pytest.raises(grpc.GrpcError, match="cannot connect to containerd at"):
        grpc.version(str(tmp_path / "nothing-here.sock"))
