"""`labcoat view [RUNS_DIR|RUN_DIR] [--host H] [--port N] [--open]`: serve the viewer.

Binds 127.0.0.1 unless told otherwise; any other host gets a warning, since whoever reaches
that address can read every run under the folder (goals, code, logs, transcripts). The socket
is bound here, before uvicorn starts, so that a port in use is one clear message.
"""

from __future__ import annotations

import signal
import socket
import sys
import threading
import webbrowser
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    import uvicorn

from labcoat.errors import ConfigError

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port); ConfigError when that cannot be."""
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(info[0], socket.SOCK_STREAM)
    except (OSError, UnicodeError) as err:
        raise ConfigError(f"--host {host}: not an address this machine can listen on "
                          f"({err}). Use 127.0.0.1 (the default) or one of its addresses."
                          ) from None
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(info[4])
    except OSError as err:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port} ({err.strerror}). Pick another "
                          "port with --port N (or --port 0 for any free one).") from None
    sock.listen(128)
    return sock


def url_of(sock: socket.socket, host: str) -> str:
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def serve(target: Path, *, host: str = "127.0.0.1", port: int = 8000, open_browser: bool = False,
          out: TextIO | None = None) -> int:
    """Serve the viewer until Ctrl-C (then 130) or SIGTERM (then 0); print the URL first, and a
    warning off loopback."""
    import uvicorn

    from labcoat.views.web.app import create_app

    out = out or sys.stdout
    sock = bind(host, port)
    url = url_of(sock, host)
    if host not in LOOPBACK:
        print(f"labcoat: warning: serving on {host}: anyone who can reach this address can "
              "read these runs (goals, code, logs, transcripts).", file=sys.stderr)
    print(f"labcoat view: {target} at {url} (Ctrl-C stops)", file=out, flush=True)
    app = create_app(target, host=host)
    config = uvicorn.Config(app, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=1, lifespan="off")
    if open_browser:
        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    server = uvicorn.Server(config)
    received = _remember_signals(server)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled, once it has stopped
        return 130
    # That re-raise goes through asyncio's own SIGINT handler and is not certain (a Ctrl-C was
    # seen to end with 0): the signal received decides.
    return 130 if signal.SIGINT in received else 0


def _remember_signals(server: uvicorn.Server) -> list[int]:
    """The signals that ask `server` to stop, in order (uvicorn installs `handle_exit`)."""
    received: list[int] = []
    handle_exit = server.handle_exit

    def remembering(sig: int, frame: FrameType | None) -> None:
        received.append(sig)
        handle_exit(sig, frame)

    server.handle_exit = remembering  # type: ignore[method-assign]
    return received
