"""A tiny HTTP server answering every GET with this node's name: the lab's service.

Standard library only and started with `python -S`: it must be up within milliseconds
of a failover, so it imports almost nothing.
"""

import socket
import sys
import threading

BODY = (socket.gethostname() + "\n").encode()
RESPONSE = (
    b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
    + str(len(BODY)).encode()
    + b"\r\nConnection: close\r\n\r\n"
    + BODY
)


def answer(conn: socket.socket) -> None:
    with conn:
        conn.settimeout(2.0)
        try:
            conn.recv(4096)
            conn.sendall(RESPONSE)
        except OSError:
            pass


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 80
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # The floating address may come up after the service: listen on every address.
    server.bind(("0.0.0.0", port))
    server.listen(128)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=answer, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
