"""Starting a `cxlkv serve` process and reading the addresses it prints (conftest.py, soak.py).
Standard library only."""
import re
import subprocess


def start(binary, args, stderr):
    """(process, lm:// TCP port, metrics port) of `binary serve ARGS`; args must include
    --port and --metrics-port. Kills the process and raises RuntimeError if it does not print
    both addresses."""
    proc = subprocess.Popen([binary, "serve", *args], stdout=subprocess.PIPE, stderr=stderr,
                            text=True)
    port = metrics_port = None
    for line in proc.stdout:
        m = re.search(r"lm://127\.0\.0\.1:(\d+)", line)
        if m:
            port = int(m.group(1))
        m = re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", line)
        if m:
            metrics_port = int(m.group(1))
            break
    if port is None or metrics_port is None:
        proc.kill()
        proc.wait()
        raise RuntimeError("cxlkv serve did not start")
    return proc, port, metrics_port
