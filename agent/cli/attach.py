"""A terminal session with the agent: the user's terminal joined to a container's.

`berth run` (`/apps/APP/run/attach`, see agent.api.runs.run_with_terminal) and the
add-on clients (`/apps/APP/addons/NAME/attach`, agent.api.addonclients) open a WebSocket
to the agent over its unix socket, put the local terminal in raw mode (keystrokes such
as Ctrl-C go to the container, as with `heroku run bash`), and relay: keystrokes as
binary frames, window size changes (SIGWINCH) as `{"size": [columns, rows]}`, the
container's output straight to the terminal. The session's last frame carries the exit
status, which becomes the CLI's. The WebSocket carries the same headers as every other
request of the CLI (agent.cli.client): over `ssh -t` the key's name, so the agent holds
the session to that key's apps as it holds any request.
"""

from __future__ import annotations

import json
import os
import signal
import termios
import threading
import tty
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from agent.cli.client import ControlClient, path
from agent.cli.starthint import start_hint
from agent.errors import AgentUnavailable, BerthError

if TYPE_CHECKING:
    from websockets.sync.client import ClientConnection


def run_with_terminal(client: ControlClient, app: str, command: str, stdin: int,
                      stdout: int) -> int:
    """Run `command` in a one-off container of `app` with this terminal attached; the
    command's exit status."""
    return attach(client, path("apps", app, "run", "attach"), {"command": command},
                  stdin, stdout)


def attach(client: ControlClient, url_path: str, query: Mapping[str, str], stdin: int,
           stdout: int) -> int:
    """This terminal joined to the session the agent serves at `url_path`; the status
    its last frame gives."""
    columns, rows = _size(stdout)
    connection = _connect(client, url_path, {**query, "columns": str(columns),
                                             "rows": str(rows)})
    with connection, raw_mode(stdin):
        return _relay(connection, stdin, stdout)


def _connect(client: ControlClient, url_path: str, query: Mapping[str, str]
             ) -> ClientConnection:
    from websockets.exceptions import InvalidStatus, WebSocketException
    from websockets.sync.client import unix_connect

    socket_path = os.fspath(client.socket_path)
    url = f"ws://localhost{url_path}?{urlencode(query)}"
    try:
        return unix_connect(socket_path, url, max_size=None, compression=None,
                            additional_headers=client.headers())
    except FileNotFoundError:
        raise AgentUnavailable(
            f"the agent is not running (no socket at {socket_path}); {start_hint()}") from None
    except PermissionError:
        raise AgentUnavailable(
            f"permission denied on {socket_path}: run as root or the berth user") from None
    except InvalidStatus as exc:  # refused before the session began (a key's scope)
        raise BerthError(_refusal(exc)) from None
    except (OSError, WebSocketException) as exc:
        raise AgentUnavailable(f"cannot talk to the agent at {socket_path}: {exc}") from None


def _refusal(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    body = getattr(response, "body", b"") or b""
    try:
        return str(json.loads(body)["error"])
    except (ValueError, KeyError, TypeError):
        status = getattr(response, "status_code", "?")
        return f"the agent refused the session (HTTP {status})"


def _relay(connection: ClientConnection, stdin: int, stdout: int) -> int:
    """Keystrokes out from a thread, output in here, until the last frame."""
    from websockets.exceptions import WebSocketException

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
