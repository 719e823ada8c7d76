"""How the head's agent runs a job's share on another pod (copied to every pod; stdlib only).

Pods have no SSH server, and the head has no Kubernetes credentials, so every worker pod
runs ``python3 skyhop_k8s_relay.py serve PORT TOKEN_FILE``: a small TCP server on the pod
network that runs one ``sh -c`` command per connection once the client proved it knows the
cluster's token. The head's agent uses ``python3 skyhop_k8s_relay.py run IP PORT TOKEN_FILE
COMMAND`` as the node's launcher: it sends the command and its stdin, copies the
command's output to its stdout and exits with the command's exit code. When the launcher
is killed (cancel, a failed gang member, down) its connection closes and the relay kills
the command's whole process group.

Frames from the relay: ``b"D" + 4-byte length + data`` (output), then ``b"X" + 4-byte
signed exit code``.
"""

import contextlib
import hmac
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading


def _read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def _serve_one(conn, token):
    try:
        header = b""
        while not header.endswith(b"\n"):
            chunk = conn.recv(1)
            if not chunk or len(header) > 1 << 20:
                return
            header += chunk
        request = json.loads(header)
        if not hmac.compare_digest(str(request.get("token", "")), token):
            conn.sendall(b"X" + struct.pack(">i", 255))
            return
        stdin = _read_exact(conn, int(request.get("stdin_len", 0)))
        proc = subprocess.Popen(
            ["sh", "-c", request["command"]],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(stdin)
            proc.stdin.close()
        except BrokenPipeError:
            pass

        def watch_client():
            # The client sends nothing more: EOF or an error means it is gone.
            try:
                while conn.recv(1):
                    pass
            except OSError:
                pass
            if proc.poll() is None:
                with contextlib.suppress(OSError):
                    os.killpg(proc.pid, signal.SIGKILL)

        threading.Thread(target=watch_client, daemon=True).start()
        fd = proc.stdout.fileno()
        while True:
            data = os.read(fd, 65536)
            if not data:
                break
            conn.sendall(b"D" + struct.pack(">I", len(data)) + data)
        code = proc.wait()
        conn.sendall(b"X" + struct.pack(">i", code if code >= 0 else 128 - code))
    except (OSError, ValueError, KeyError):
        pass
    finally:
        conn.close()


def serve(port, token_file):
    with open(token_file) as f:
        token = f.read().strip()
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", port))
    server.listen(64)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=_serve_one, args=(conn, token), daemon=True).start()


def run(host, port, token_file, command):
    with open(token_file) as f:
        token = f.read().strip()
    stdin = sys.stdin.buffer.read()
    try:
        sock = socket.create_connection((host, port), timeout=30)
    except OSError as exc:
        sys.stderr.write(f"skyhop: cannot reach the pod at {host}:{port}: {exc}\n")
        return 255
    sock.settimeout(None)

    def on_signal(signum, frame):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        os._exit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    header = json.dumps({"token": token, "command": command, "stdin_len": len(stdin)})
    sock.sendall(header.encode() + b"\n" + stdin)
    out = sys.stdout.buffer
    try:
        while True:
            kind = _read_exact(sock, 1)
            if kind == b"D":
                (size,) = struct.unpack(">I", _read_exact(sock, 4))
                out.write(_read_exact(sock, size))
                out.flush()
            else:
                (code,) = struct.unpack(">i", _read_exact(sock, 4))
                return code
    except ConnectionError:
        sys.stderr.write(f"skyhop: lost the connection to the pod at {host}:{port}\n")
        return 255


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]), sys.argv[3])
    else:
        sys.exit(run(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]))
