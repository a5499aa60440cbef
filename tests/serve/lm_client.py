"""A raw client of LMCache's lm:// remote protocol (standard library only), for the tests that
need bytes LMCache's own client would never send (bad frames, cut payloads, LIST).

Request: 9 native-endian int32 (command, length, fmt, dtype, location, shape0..3) and the
key, 150 bytes padded with spaces. PUT (1) is followed by the payload and gets no reply; GET
(2), EXIST (3), LIST (4) and HEALTH (5) get 9 int32 (code, length, fmt, dtype, shape0..3,
location): the reply carries location LAST, as LMCache's ServerMetaMessage writes and reads it
(lmcache/v1/protocol.py @c1a02cc8). test_lmcache_wire.py checks these encodings byte for byte
against LMCache's own ClientMetaMessage/ServerMetaMessage from ../shared/lmcache-kit.
"""
import socket
import struct

MAX_KEY_LENGTH = 150
REQUEST = struct.Struct(f"iiiiiiiii{MAX_KEY_LENGTH}s")
REPLY = struct.Struct("iiiiiiiii")
PUT, GET, EXIST, LIST, HEALTH = 1, 2, 3, 4, 5
SUCCESS, FAIL = 200, 400

# LMCache's dtype numbers (protocol.py) and the element sizes of those dtypes.
DTYPES = {"float16": (2, 2), "bfloat16": (3, 2), "float32": (4, 4), "float64": (5, 8),
          "uint8": (6, 1), "float8_e4m3fn": (7, 1), "float8_e5m2": (8, 1)}
VALID_DTYPES = {0, 1, 2, 3, 4, 5, 6, 7, 8}
VALID_LOCATIONS = {0, 1, 2}  # None, LocalCPUBackend, LocalDiskBackend


class Reply:
    def __init__(self, raw):
        (self.code, self.length, self.fmt, self.dtype, *shape, self.location) = REPLY.unpack(raw)
        self.shape = tuple(shape)
        # LMCache's client turns these into MemoryFormat, dtype and location objects before it
        # looks at the code: values it cannot map would raise there.
        assert self.dtype in VALID_DTYPES, self.dtype
        assert self.location in VALID_LOCATIONS, self.location
        assert self.fmt >= 0, self.fmt


def request(command, key="", length=0, fmt=1, dtype=2, shape=(0, 0, 0, 0), location=0):
    raw_key = key.encode() if isinstance(key, str) else key
    return REQUEST.pack(command, length, fmt, dtype, location, *shape,
                        raw_key.ljust(MAX_KEY_LENGTH))


class Client:
    def __init__(self, address, timeout=30):
        if isinstance(address, str):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(timeout)
        self.sock.connect(address)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def recv_exactly(self, n):
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            k = self.sock.recv_into(view[got:], n - got)
            if k == 0:
                raise ConnectionError(f"closed after {got} of {n} bytes")
            got += k
        return bytes(buf)

    def reply(self):
        return Reply(self.recv_exactly(REPLY.size))

    def put(self, key, data, fmt=5, dtype=0, shape=None):
        """Default layout: LMCache's byte buffer (BINARY_BUFFER, dtype None, [len, 0, 0, 0])."""
        shape = shape or (len(data), 0, 0, 0)
        self.sock.sendall(request(PUT, key, len(data), fmt, dtype, shape))
        self.sock.sendall(data)

    def get(self, key):
        """(Reply, bytes) on a hit, (Reply, None) on a miss."""
        self.sock.sendall(request(GET, key))
        r = self.reply()
        if r.code != SUCCESS:
            return r, None
        return r, self.recv_exactly(r.length)

    def exist(self, key):
        self.sock.sendall(request(EXIST, key))
        return self.reply().code == SUCCESS

    def list(self):
        self.sock.sendall(request(LIST))
        r = self.reply()
        assert r.code == SUCCESS, r.code
        data = self.recv_exactly(r.length)
        return set(data.decode().split("\n")) if data else set()

    def health(self):
        self.sock.sendall(request(HEALTH))
        return self.reply().code
