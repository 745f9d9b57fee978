"""Reading the Docker engine's build stream (pure: chunks in, lines and facts out).

The classic builder streams JSON chunks: `{"stream": text}` with "Step 3/9 : RUN ..."
headings, " ---> Using cache", " ---> Running in <container>", " ---> <layer id>" and the
commands' own output; `{"aux": {"ID": ...}}` with the image id; `{"error": ...}` when it
fails; `{"status": ...}` while a base image is pulled. `BuildOutput` turns that into
tidy lines for the pusher (step headings marked "(cached)" when reused, command output
indented, engine chatter dropped), remembers each step's cache use and layer id, the
container running right now (so a deadline can stop it), and the tail of the log.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Mapping
from typing import Any

from agent.build.model import BuildStep

STEP_INDENT = "       "
OUTPUT_INDENT = "         "
MAX_INSTRUCTION = 120

_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_RUNNING = re.compile(r"^ ---> Running in ([0-9a-f]{6,64})$")
_LAYER = re.compile(r"^ ---> ([0-9a-f]{6,64})$")
_BUILT = re.compile(r"^Successfully built ([0-9a-f]{6,64})$")
_EXIT_CODE = re.compile(r"returned a non-zero code: (\d+)")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_DROPPED = ("Removing intermediate container", "Successfully tagged", " ---> [Warning]")


class BuildOutput:
    def __init__(self, tail_lines: int) -> None:
        self.steps: list[BuildStep] = []
        self.container_id: str | None = None  # the step container running now
        self.image_id: str | None = None
        self.error: str | None = None
        self._tail: deque[str] = deque(maxlen=tail_lines)
        self._partial = ""
        self._step: tuple[int, int, str] | None = None
        self._step_cached = False
        self._step_pending = False  # heading not shown yet: waiting to learn if cached

    @property
    def current_step(self) -> str:
        if self._step is None:
            return ""
        number, total, instruction = self._step
        return f"step {number}/{total} ({_short(instruction)})"

    @property
    def final_step_base(self) -> str | None:
        """Once the final step has begun: the image it runs on (the layer id the step
        before it ended with); None before, or when that step made no layer."""
        if self._step is None or self._step[0] != self._step[1]:
            return None
        before = [s for s in self.steps if s.number == self._step[0] - 1]
        if not before:
            return None
        return before[0].layer_id or None

    @property
    def reason(self) -> str:
        """The error in a few words ("exit code 1" for a failed RUN)."""
        if self.error is None:
            return ""
        code = _EXIT_CODE.search(self.error)
        return f"exit code {code.group(1)}" if code else self.error.strip().splitlines()[0][:300]

    def tail(self) -> tuple[str, ...]:
        return tuple(self._tail)

    def feed(self, chunk: Mapping[str, Any]) -> list[str]:
        """Lines to show for one chunk of the stream."""
        shown: list[str] = []
        if "stream" in chunk and isinstance(chunk["stream"], str):
            text = self._partial + chunk["stream"]
            *complete, self._partial = text.split("\n")
            for line in complete:
                shown += self._line(line)
        if "aux" in chunk and isinstance(chunk["aux"], Mapping):
            image = chunk["aux"].get("ID")
            if isinstance(image, str):
                self.image_id = image
        if "error" in chunk:
            shown += self._flush()
            self.error = str(chunk.get("error") or chunk.get("errorDetail") or "unknown error")
            self._tail.append(self.error.strip())
            shown.append(f"{STEP_INDENT}{self.error.strip()}")
        if "status" in chunk and isinstance(chunk["status"], str) and "id" not in chunk:
            self._tail.append(chunk["status"])
            shown.append(f"{OUTPUT_INDENT}{chunk['status']}")
        return shown

    def finish(self) -> list[str]:
        """Lines still held back when the stream ends."""
        shown = self._line(self._partial) if self._partial else []
        self._partial = ""
        return shown + self._flush()

    def _line(self, raw: str) -> list[str]:
        line = _ANSI.sub("", raw.rstrip("\r").rsplit("\r", 1)[-1]).rstrip()
        if not line.strip():
            return []
        step = _STEP.match(line)
        if step:
            shown = self._flush()
            self._close_step("")
            self._step = (int(step.group(1)), int(step.group(2)), step.group(3))
            self._step_cached = False
            self._step_pending = True
            self._tail.append(line)
            return shown
        if line == " ---> Using cache":
            self._step_cached = True
            return self._flush()
        running = _RUNNING.match(line)
        if running:
            self.container_id = running.group(1)
            return self._flush()
        layer = _LAYER.match(line)
        if layer:
            self.container_id = None
            shown = self._flush()
            self._close_step(layer.group(1))
            return shown
        built = _BUILT.match(line)
        if built:
            self.image_id = self.image_id or built.group(1)
            return self._flush()
        if line.startswith(_DROPPED):
            return self._flush()
        self._tail.append(line)
        return self._flush() + [f"{OUTPUT_INDENT}{line}"]

    def _flush(self) -> list[str]:
        if not self._step_pending or self._step is None:
            return []
        self._step_pending = False
        number, total, instruction = self._step
        cached = " (cached)" if self._step_cached else ""
        return [f"{STEP_INDENT}[{number}/{total}] {_short(instruction)}{cached}"]

    def _close_step(self, layer_id: str) -> None:
        if self._step is None:
            return
        number, total, instruction = self._step
        if not any(s.number == number for s in self.steps):
            flat = " ".join(instruction.split())
            self.steps.append(BuildStep(number, total, flat, self._step_cached, layer_id))
        if layer_id == "":
            self._step = None


def _short(instruction: str) -> str:
    flat = " ".join(instruction.split())
    return flat if len(flat) <= MAX_INSTRUCTION else flat[: MAX_INSTRUCTION - 1] + "…"
