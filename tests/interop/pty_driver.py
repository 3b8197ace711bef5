#!/usr/bin/python3
"""Drives a program through a real pseudo-terminal, for the REPL specs.

usage: pty_driver.py [--control SOCKET] [--cols N] [--rows N] STEPS -- ARGV...

ARGV runs on the slave side of a new pty (as its controlling terminal,
TERM=xterm), and STEPS, a JSON list, is played against it:

  {"send": "text"}                  write these characters (JSON escapes:
                                    "\\r" is Enter, "\\u0003" Ctrl-C,
                                    "\\u0004" Ctrl-D)
  {"expect": "regex", "timeout": s} wait until the plain output after the
                                    previous match matches (escape
                                    sequences and carriage returns removed)
  {"screen": "regex", "timeout": s} wait until the rendered screen (lines
                                    joined by newlines, trailing blanks
                                    cut) matches
  {"line": "text", "timeout": s}    wait until the cursor's screen line is
                                    exactly this text
  {"notify": "name"}                send "name\\n" on the control socket
  {"await": "name", "timeout": s}   wait for the line "name" on it
  {"exit": s}                       wait for the program to exit

The control socket (a Unix socket the spec listens on) lets the spec act
between steps, with no sleeps: the driver notifies, the spec acts, the spec
answers. The default timeout is 10 s.

Prints one JSON object on stdout: ok, error (what failed), step (its
index), exit (the program's exit code, when it ended), plain (all plain
output), screen (the rendered lines) and cursor ([row, col]). Exits 0
whatever happened, so that the spec can show all of it; 2 on bad usage.
A program still running at the end is killed.
"""
import fcntl
import json
import os
import pty
import re
import select
import signal
import socket
import struct
import sys
import termios
import time

DEFAULT_TIMEOUT = 10.0
CSI = re.compile(rb"\x1b\[([0-9;?]*)([ -/]*)([@-~])")


class Screen:
    """Just enough of a terminal to see what libedit draws: printable text,
    CR, LF, BS, TAB, and the CSI sequences for cursor moves and erasing."""

    def __init__(self, rows, cols):
        self.rows, self.cols = rows, cols
        self.lines = [[]]
        self.row = self.col = 0
        self.pending = b""

    def _line(self):
        while len(self.lines) <= self.row:
            self.lines.append([])
        return self.lines[self.row]

    def _put(self, ch):
        if self.col >= self.cols:
            self.row += 1
            self.col = 0
        line = self._line()
        while len(line) < self.col:
            line.append(" ")
        if self.col < len(line):
            line[self.col] = ch
        else:
            line.append(ch)
        self.col += 1

    def _csi(self, params, final):
        nums = [int(p) if p.isdigit() else 0 for p in params.split(";")] if params else []
        n = nums[0] if nums and nums[0] > 0 else 1
        line = self._line()
        if final == "A":
            self.row = max(0, self.row - n)
        elif final == "B":
            self.row += n
        elif final == "C":
            self.col = min(self.cols - 1, self.col + n)
        elif final == "D":
            self.col = max(0, self.col - n)
        elif final == "G":
            self.col = min(self.cols - 1, n - 1)
        elif final == "K":
            mode = nums[0] if nums else 0
            if mode == 0:
                del line[self.col:]
            elif mode == 1:
                for i in range(min(self.col + 1, len(line))):
                    line[i] = " "
            else:
                line.clear()
        elif final == "J":
            mode = nums[0] if nums else 0
            if mode == 0:
                del line[self.col:]
                del self.lines[self.row + 1:]
            elif mode == 2:
                self.lines = [[] for _ in self.lines]
        elif final in "Hf":
            self.row = (nums[0] - 1 if nums and nums[0] > 0 else 0)
            self.col = (nums[1] - 1 if len(nums) > 1 and nums[1] > 0 else 0)
        elif final == "P":
            del line[self.col:self.col + n]
        elif final == "@":
            for _ in range(n):
                line.insert(self.col, " ")
        # anything else (modes, colours) changes nothing we look at

    def feed(self, data):
        data = self.pending + data
        self.pending = b""
        i = 0
        while i < len(data):
            b = data[i]
            if b == 0x1b:
                m = CSI.match(data, i)
                if m:
                    self._csi(m.group(1).decode(), m.group(3).decode())
                    i = m.end()
                    continue
                if i + 1 >= len(data) or (data[i + 1] == ord("[") and
                                          re.fullmatch(rb"\x1b\[[0-9;?]*[ -/]*", data[i:])):
                    self.pending = data[i:]  # a sequence cut by the read
                    return
                if data[i + 1] == ord("]"):  # OSC: up to BEL or ST
                    end = data.find(b"\x07", i)
                    if end < 0:
                        self.pending = data[i:]
                        return
                    i = end + 1
                    continue
                i += 2
                continue
            if b == 0x0d:
                self.col = 0
            elif b == 0x0a:
                self.row += 1
                self._line()
            elif b == 0x08:
                self.col = max(0, self.col - 1)
            elif b == 0x09:
                self.col = min(self.cols - 1, (self.col // 8 + 1) * 8)
            elif b == 0x07 or b < 0x20:
                pass
            else:
                # UTF-8: keep continuation bytes with their lead byte
                j = i + 1
                while j < len(data) and 0x80 <= data[j] < 0xc0:
                    j += 1
                self._put(data[i:j].decode("utf-8", "replace"))
                i = j
                continue
            i += 1

    def text_lines(self):
        return ["".join(l).rstrip() for l in self.lines]

    def text(self):
        lines = self.text_lines()
        while lines and not lines[-1]:
            lines.pop()
        return "\n".join(lines)

    def cursor_line(self):
        self._line()
        return "".join(self.lines[self.row]).rstrip()


def plain(data):
    data = CSI.sub(b"", data)
    data = re.sub(rb"\x1b\][^\x07]*\x07", b"", data)
    data = re.sub(rb"\x1b.", b"", data)
    data = data.replace(b"\r", b"").replace(b"\x07", b"")
    return data.decode("utf-8", "replace")


class Driver:
    def __init__(self, argv, rows, cols, control):
        self.screen = Screen(rows, cols)
        self.raw = b""
        self.pos = 0  # where the next "expect" starts, in plain text
        self.exit_code = None
        self.control = None
        self.control_buf = b""
        if control:
            self.control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.control.connect(control)
        pid, fd = pty.fork()
        if pid == 0:
            os.environ["TERM"] = "xterm"
            os.environ.pop("COLUMNS", None)
            os.environ.pop("LINES", None)
            try:
                os.execvp(argv[0], argv)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def pump(self, timeout):
        """Reads what the program wrote within timeout seconds (at least
        one read attempt); notes its exit."""
        if self.fd is None:  # the terminal is gone: only the exit is left
            self.reap(False)
            if self.exit_code is None:
                # the child's pidfd turns readable when it exits: wait on
                # that, not on a clock
                pidfd = os.pidfd_open(self.pid)
                try:
                    select.select([pidfd], [], [], max(0.0, timeout))
                finally:
                    os.close(pidfd)
                self.reap(False)
            return
        r, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        if r:
            try:
                data = os.read(self.fd, 65536)
            except OSError:
                data = b""
            if data:
                self.raw += data
                self.screen.feed(data)
                return
            os.close(self.fd)
            self.fd = None
        self.reap(False)

    def reap(self, block):
        if self.exit_code is not None:
            return
        pid, status = os.waitpid(self.pid, 0 if block else os.WNOHANG)
        if pid:
            self.exit_code = os.waitstatus_to_exitcode(status)
            if self.exit_code < 0:
                self.exit_code = 128 - self.exit_code

    def plain(self):
        return plain(self.raw)

    def wait_for(self, check, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            if check():
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failure("timed out after %.1f s waiting for %s" % (timeout, what))
            if self.fd is None and self.exit_code is not None:
                if check():
                    return
                raise Failure("the program exited (%s) while waiting for %s" % (self.exit_code, what))
            self.pump(min(left, 0.05))

    def step(self, s):
        timeout = float(s.get("timeout", DEFAULT_TIMEOUT))
        if "send" in s:
            os.write(self.fd, s["send"].encode("utf-8"))
        elif "expect" in s:
            rx = re.compile(s["expect"])
            found = {}

            def check():
                m = rx.search(self.plain(), self.pos)
                if m:
                    found["end"] = m.end()
                return m is not None
            self.wait_for(check, timeout, "output matching %r" % s["expect"])
            self.pos = found["end"]
        elif "screen" in s:
            rx = re.compile(s["screen"], re.M)
            self.wait_for(lambda: rx.search(self.screen.text()) is not None, timeout,
                          "a screen matching %r" % s["screen"])
        elif "line" in s:
            self.wait_for(lambda: self.screen.cursor_line() == s["line"], timeout,
                          "the cursor's line to be %r" % s["line"])
        elif "notify" in s:
            self.control.sendall((s["notify"] + "\n").encode())
        elif "await" in s:
            self.control.settimeout(timeout)
            try:
                while b"\n" not in self.control_buf:
                    self.pump(0)
                    chunk = self.control.recv(4096)
                    if not chunk:
                        raise Failure("the control socket closed while awaiting %r" % s["await"])
                    self.control_buf += chunk
            except socket.timeout:
                raise Failure("timed out awaiting %r" % s["await"])
            line, self.control_buf = self.control_buf.split(b"\n", 1)
            if line.decode() != s["await"]:
                raise Failure("awaited %r, got %r" % (s["await"], line.decode()))
        elif "exit" in s:
            self.wait_for(lambda: self.exit_code is not None, float(s["exit"]), "the program to exit")
        else:
            raise Failure("unknown step %r" % (s,))

    def finish(self):
        # collect what is left, then make sure the program is gone
        deadline = time.monotonic() + 0.2
        while self.fd is not None and time.monotonic() < deadline and self.exit_code is None:
            self.pump(0.02)
        if self.exit_code is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.reap(True)
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class Failure(Exception):
    pass


def main(argv):
    rows, cols, control = 50, 200, None
    args = argv[1:]
    while args and args[0].startswith("--") and args[0] != "--":
        flag = args.pop(0)
        if flag == "--control":
            control = args.pop(0)
        elif flag == "--cols":
            cols = int(args.pop(0))
        elif flag == "--rows":
            rows = int(args.pop(0))
        else:
            print("unknown option " + flag, file=sys.stderr)
            return 2
    if len(args) < 3 or args[1] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    steps = json.loads(args[0])
    d = Driver(args[2:], rows, cols, control)
    result = {"ok": True, "error": None, "step": None}
    for i, s in enumerate(steps):
        try:
            d.step(s)
        except (Failure, OSError) as e:
            result.update(ok=False, error=str(e), step=i + 1, failed=s)
            break
    d.finish()
    result.update(exit=d.exit_code, plain=d.plain(), screen=d.screen.text_lines(),
                  cursor=[d.screen.row, d.screen.col])
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
