"""Fixtures for the lm:// server tests: a `cxlkv serve` process per test module."""
import os
import signal
import tempfile

import pytest

import serve_process


class Server:
    def __init__(self, *extra):
        binary = os.environ.get("CXLKV_BIN")
        if not binary:
            pytest.fail("CXLKV_BIN must name the cxlkv binary")
        self.dir = tempfile.TemporaryDirectory(prefix="cxlkv-serve-test-")
        self.unix_path = os.path.join(self.dir.name, "lm.sock")
        self.stderr_path = os.path.join(self.dir.name, "stderr.txt")
        self.stderr = open(self.stderr_path, "w")
        try:
            self.proc, self.port, self.metrics_port = serve_process.start(
                binary, ["--port", "0", "--unix", self.unix_path, "--metrics-port", "0", *extra],
                self.stderr)
        except RuntimeError:
            pytest.fail("cxlkv serve did not start: " + open(self.stderr_path).read())

    @property
    def tcp(self):
        return ("127.0.0.1", self.port)

    def log(self):
        self.stderr.flush()
        with open(self.stderr_path) as f:
            return f.read()

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        self.stderr.close()
        self.dir.cleanup()
        return self.proc.returncode, out


@pytest.fixture(scope="module")
def server():
    s = Server("--tier", "dram,256M", "--max-payload", "8M")
    yield s
    rc, _ = s.stop()
    assert rc == 0, rc
