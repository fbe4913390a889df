"""A command run in a real terminal (a pseudo-terminal), answered at its prompts as a person
answers them: what a prompt library renders there (markup, colours, wrapping) is what a user
reads, which capturing a pipe would not show."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import termios
import time
from collections.abc import Callable, Mapping
from pathlib import Path

# Colours, cursor moves and other control sequences a terminal interprets.
CONTROL_SEQUENCE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")

# Given the screen's text so far, the line to type at the prompt it ends with, or None while
# the command is still writing.
Responder = Callable[[str], str | None]


def screen_text(output: bytes) -> str:
    return CONTROL_SEQUENCE.sub("", output.decode(errors="replace"))


def run_in_terminal(
    command: list[str],
    respond: Responder,
    *,
    cwd: Path,
    environment: Mapping[str, str],
    columns: int = 300,
    timeout: float = 120,
) -> tuple[int, str]:
    """Run command on a terminal of `columns` columns; returns its exit status and the text
    it showed. `respond` is asked whenever the command has stopped writing for a moment."""
    pid, terminal = pty.fork()
    if pid == 0:  # the child: the command, with the terminal as its standard streams
        os.chdir(cwd)
        os.execvpe(command[0], command, dict(environment))
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    output = b""
    answered_at = -1
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([terminal], [], [], 0.3)
            if ready:
                try:
                    data = os.read(terminal, 65536)
                except OSError:  # the command has exited and closed the terminal
                    break
                if not data:
                    break
                output += data
                continue
            if len(output) != answered_at:
                answer = respond(screen_text(output))
                if answer is not None:
                    os.write(terminal, answer.encode() + b"\r")
                    answered_at = len(output)
        else:
            os.kill(pid, 9)
            raise TimeoutError(f"{command} still runs after {timeout} s:\n{screen_text(output)}")
    finally:
        os.close(terminal)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), screen_text(output)
