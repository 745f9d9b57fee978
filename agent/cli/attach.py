"""`berth run` from a terminal: the user's terminal joined to a one-off container's.

The CLI opens a WebSocket to the agent over its unix socket (`/apps/APP/run/attach`,
see agent.api.runs.run_with_terminal), puts the local terminal in raw mode (keystrokes
such as Ctrl-C go to the container, as with `heroku run bash`), and relays: keystrokes
as binary frames, window size changes (SIGWINCH) as `{"size": [columns, rows]}`, the
container's output straight to the terminal. The session's last frame carries the exit
status, which becomes the CLI's. Only from a terminal: over SSH, Berth's keys get no
pty, so `run` streams output as without one.
"""

from __future__ import annotations

import json
import os
import signal
import termios
import threading
import tty
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from agent.cli.client import path
from agent.cli.starthint import start_hint
from agent.errors import AgentUnavailable, BerthError

if TYPE_CHECKING:
    from websockets.sync.client import ClientConnection


def run_with_terminal(socket_path: str, app: str, command: str, stdin: int, stdout: int) -> int:
    """Run `command` in a one-off container of `app` with this terminal attached; the
    command's exit status."""
    from websockets.exceptions import WebSocketException
    from websockets.sync.client import unix_connect

    columns, rows = _size(stdout)
    query = urlencode({"command": command, "columns": columns, "rows": rows})
    url = f"ws://localhost{path('apps', app, 'run', 'attach')}?{query}"
    try:
        connection = unix_connect(socket_path, url, max_size=None, compression=None)
    except FileNotFoundError:
        raise AgentUnavailable(
            f"the agent is not running (no socket at {socket_path}); {start_hint()}") from None
    except (OSError, WebSocketException) as exc:
        raise AgentUnavailable(f"cannot talk to the agent at {socket_path}: {exc}") from None
    with connection, raw_mode(stdin):
        threading.Thread(target=_keystrokes, args=(connection, stdin), daemon=True).start()
        # Sent from a thread of its own: the handler interrupts this thread anywhere,
        # perhaps inside the connection's receive, whose lock a send would wait for.
        previous = signal.signal(signal.SIGWINCH, lambda *_: threading.Thread(
            target=_send_size, args=(connection, stdout), daemon=True).start())
        try:
            for message in connection:
                if isinstance(message, bytes):
                    _write_all(stdout, message)
                    continue
                last = json.loads(message)
                if "exit" in last:
                    status = int(last["exit"])
                    return status if 0 <= status <= 255 else 124  # as timeout(1)
                raise BerthError(str(last.get("error", "the agent ended the session")))
        except WebSocketException as exc:
            raise AgentUnavailable(f"lost the agent mid-session: {exc}") from None
        finally:
            signal.signal(signal.SIGWINCH, previous)
    raise BerthError("the agent ended the session early")


@contextmanager
def raw_mode(fd: int) -> Iterator[None]:
    """The terminal on `fd` in raw mode (no local echo, no line editing, no signals from
    Ctrl-C), restored afterwards whatever happens."""
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd, termios.TCSANOW)  # TCSAFLUSH would drop what was typed ahead
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _keystrokes(connection: ClientConnection, stdin: int) -> None:
    """Forward what is typed until the terminal closes or the session ends."""
    from websockets.exceptions import WebSocketException

    while True:
        try:
            data = os.read(stdin, 4096)
        except OSError:
            return
        if not data:
            return
        try:
            connection.send(data)
        except (WebSocketException, OSError):
            return


def _send_size(connection: ClientConnection, stdout: int) -> None:
    from websockets.exceptions import WebSocketException

    try:
        connection.send(json.dumps({"size": list(_size(stdout))}))
    except (OSError, WebSocketException):
        pass


def _size(fd: int) -> tuple[int, int]:
    """The terminal's columns and rows; 80x24 when it does not say (a fresh pty)."""
    try:
        columns, rows = os.get_terminal_size(fd)
    except OSError:
        return 80, 24
    return (columns or 80), (rows or 24)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        written = os.write(fd, data)
        data = data[written:]
