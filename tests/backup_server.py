"""A real ``safe-data serve`` in its own process, on a port of its choosing.

server, url = start_server(tmp_path / "store", tokens_file)
try:
    ...
finally:
    stop(server)
"""

import subprocess
import sys
from pathlib import Path


def start_server(store, tokens, port=0):
    """Start the server on ``store`` with the tokens file ``tokens``; returns the process
    and its URL once it listens (port 0: a free port, read from its first line)."""
    # the server logs every upload: to a file, as a pipe nobody reads would fill and block it
    log = open(f"{store}.log", "a")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "safe_data",
            "serve",
            "--store",
            str(store),
            "--port",
            str(port),
            "--tokens",
            str(tokens),
        ],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    log.close()
    line = proc.stdout.readline()
    assert line.startswith("serving on "), line + Path(f"{store}.log").read_text()[-2000:]
    return proc, line.split()[-1]


def start_server_for(tmp_path, token, namespace="app"):
    """:func:`start_server` on ``tmp_path/"store"``, with a tokens file (0600) giving
    ``namespace`` the token ``token``; the process and its URL."""
    tokens = Path(tmp_path) / "tokens"
    tokens.write_text(f"{namespace}:{token}\n")
    tokens.chmod(0o600)
    return start_server(Path(tmp_path) / "store", tokens)


def stop(server):
    """Stop the server (at once if already killed) and close its end of the pipe."""
    server.terminate()
    try:
        server.wait(timeout=5)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
    server.stdout.close()
