"""AMI wire format: bytes in, header dictionaries out, and back.

A message is a plain ``dict`` of header name to value, in wire order.  Plain
dictionaries keep the hot path (a busy PBX sends thousands of events a second)
free of per-message object overhead; everything above the protocol reads
``msg["Event"]`` or ``msg.get("Uniqueid")``.

Asterisk frames a message with a blank line (CRLF CRLF).  Two exceptions are
handled here so that nothing above needs to know about them: the banner line
sent on connect, and the ``Response: Follows`` command output of Asterisk up to
13, which is free text ended by ``--END COMMAND--``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Mapping

Message = dict[str, str]

#: The largest frame accepted; a frame that grows past it is dropped (and
#: reported once) instead of growing memory without bound.
MAX_FRAME = 1 << 20

_DELIM = b"\r\n\r\n"
_END_COMMAND = b"--END COMMAND--"
_FOLLOWS = b"Response: Follows"
_BANNER_PREFIX = b"Asterisk Call Manager"
_NAME_OK = re.compile(r"[A-Za-z0-9_\-()/.]+\Z").match
_BLANK = b" \t\r\n"


class FrameError(ValueError):
    """A frame from the peer that is not an AMI message."""


class HeaderInjectionError(ValueError):
    """A header we were asked to send would break AMI framing.

    Raised before anything is written, so text a user typed (a caller name, a
    transfer target) can never smuggle a second action onto the link.
    """


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        # Fall back line by line so one bad byte (an old phone's Latin-1
        # caller name) does not garble the valid UTF-8 around it.
        out = []
        for line in raw.split(b"\r\n"):
            try:
                out.append(line.decode("utf-8"))
            except UnicodeDecodeError:
                out.append(line.decode("latin-1"))
        return "\r\n".join(out)


def _parse_follows(text: str) -> Message:
    """``Response: Follows`` (Asterisk up to 13): headers, then raw CLI text.

    The CLI text uses bare LF line ends and may itself contain ``Name: value``
    lines, so only CRLF-ended lines before the first line that is not a plain
    header count as headers; everything after is ``Output``.
    """
    end = text.rfind("--END COMMAND--")
    body = text[:end] if end >= 0 else text
    msg: Message = {}
    pos = 0
    while True:
        nl = body.find("\r\n", pos)
        line = body[pos:] if nl < 0 else body[pos:nl]
        key, sep, value = line.partition(": ")
        if not sep or "\n" in line or not _NAME_OK(key):
            break
        msg[key] = msg[key] + "\n" + value if key in msg else value
        if nl < 0:
            pos = len(body)
            break
        pos = nl + 2
    lines = [line.rstrip("\r") for line in body[pos:].split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    msg["Output"] = "\n".join(lines)
    return msg


#: ``str.split(line, ": ", 1)`` for every line of a frame, in C (see :func:`_parse_plain`).
_SPLIT = str.split
_SEPS = itertools.repeat(": ")
_ONCE = itertools.repeat(1)


def _parse_plain(raw: bytes) -> Message:
    # Hot path (every event of a busy PBX): every line split at its first ": "
    # and the pairs made a dict without a Python-level loop.  It stands only
    # when each line is one header and no header repeats (dict() raises on a
    # line without ": ", and a repeat makes the dict shorter than the lines);
    # otherwise the frame is read line by line, as _parse_lines says.
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = _decode(raw)
    lines = text.split("\r\n")
    try:
        msg: Message = dict(map(_SPLIT, lines, _SEPS, _ONCE))
    except ValueError:
        msg = _parse_lines(lines)
    else:
        if len(msg) != len(lines):
            msg = _parse_lines(lines)
    if not ("Event" in msg or "Response" in msg):
        _refuse(text)
    return msg


def _parse_lines(lines: list[str]) -> Message:
    msg: Message = {}
    output: list[str] | None = None
    for line in lines:
        key, sep, value = line.partition(": ")
        if not sep:
            key, sep, value = line.partition(":")
            if not sep or " " in key:
                # Free text where a header belongs: kept as Output rather
                # than dropped (losing what Asterisk said is worse).
                if line and line != "--END COMMAND--":
                    if output is None:
                        output = []
                    output.append(line)
                continue
        if key in msg:
            # Repeated header (Output, ChanVariable): keep every value.
            msg[key] = msg[key] + "\n" + value
        else:
            msg[key] = value
    if output is not None:
        prev = msg.get("Output")
        msg["Output"] = "\n".join(([prev] if prev else []) + output)
    return msg


def _parse_follows_frame(raw: bytes) -> Message:
    text = _decode(raw)
    msg = _parse_follows(text)
    if not ("Event" in msg or "Response" in msg):
        _refuse(text)
    return msg


def _refuse(text: str) -> None:
    first = text.split("\r\n", 1)[0][:80]
    raise FrameError(f"frame does not start with Event: or Response: (first line {first!r})")


def parse_frame(raw: bytes) -> Message:
    """Turn one frame (without its terminating blank line) into a message.

    Raises :class:`FrameError` when the frame is not ``Event:`` or
    ``Response:`` led, which is what Asterisk always sends.
    """
    if raw.startswith(b"Response: Follows"):
        return _parse_follows_frame(raw)
    return _parse_plain(raw)


class AMIParser:
    """Incremental parser: feed it bytes in any chunking, get whole messages.

    Frames that cannot be parsed are passed to ``on_error`` (once each) and
    skipped; the parser never raises on peer input.  Memory is bounded: after
    :meth:`feed` returns, at most ``max_frame`` bytes are kept; a frame that
    grows past that is reported once and then skipped up to its end.
    """

    def __init__(
        self,
        on_error: Callable[[str, bytes], None] | None = None,
        max_frame: int = MAX_FRAME,
        expect_banner: bool = True,
        skip_events: Iterable[str] = (),
    ) -> None:
        self._buf = b""
        #: ``Event:`` frames with these names are dropped before they are
        #: decoded: dialplan noise nobody reads (``VarSet`` is half of a busy
        #: PBX's traffic) costs one ``startswith`` (of a tuple of prefixes).
        self._skip = tuple(sorted({b"Event: " + name.encode() + b"\r\n" for name in skip_events}))
        self._on_error = on_error or (lambda reason, raw: None)
        self._max = max_frame
        self._expect_banner = expect_banner
        self._discarding = False
        # Where the next search for a frame end may start in self._buf: the
        # bytes before it were searched already (avoids rescanning a large
        # frame that arrives in many small chunks).
        self._scan = 0
        self.banner: str | None = None
        self.skipped = 0

    @property
    def awaiting_banner(self) -> bool:
        """True until the banner line (or, without one, the first bytes) came."""
        return self._expect_banner

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete frame (bounded by ``max_frame``)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Message]:
        buf = self._buf + data if self._buf else data
        scan = self._scan
        if self._discarding:
            # Skipping the rest of an oversized frame: look for its end only.
            end = buf.find(_DELIM)
            if end < 0:
                self._buf = buf[-3:]
                return []
            self._discarding = False
            buf = buf[end + 4 :]
            scan = 0
        if self._expect_banner:
            if len(buf) < len(_BANNER_PREFIX) and _BANNER_PREFIX.startswith(buf):
                self._buf = buf
                return []
            self._expect_banner = False
            if buf.startswith(_BANNER_PREFIX):
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > self._max:
                        self._on_error(f"banner line exceeds the limit of {self._max} bytes", buf[:200])
                        self._buf = b""
                        return []
                    self._expect_banner = True
                    self._buf = buf
                    return []
                self.banner = buf[:end].decode("utf-8", "replace")
                buf = buf[end + 2 :]
                scan = 0
        out: list[Message] = []
        find = buf.find
        if _FOLLOWS not in buf:
            # No Response: Follows (whose CLI text may hold blank lines): each
            # frame ends at the next blank line, and one split cuts them all.
            if find(_DELIM, scan) >= 0:
                frames = buf.split(_DELIM)
                buf = frames.pop()
                skip = self._skip
                limit = self._max
                skipped = 0
                append = out.append
                for frame in frames:
                    if frame.startswith(skip) and len(frame) <= limit:
                        skipped += 1
                        continue
                    if not frame or (frame[0] in _BLANK and not frame.strip()):
                        continue
                    if len(frame) > limit:
                        self._on_error(f"frame of {len(frame)} bytes exceeds the limit of {limit}", frame[:200])
                        continue
                    try:
                        append(_parse_plain(frame))
                    except FrameError as e:
                        self._on_error(str(e), frame[:200])
                self.skipped += skipped
            return self._keep(buf, out)
        start = 0
        while True:
            end = find(_DELIM, scan)
            if end < 0:
                break
            follows = buf.startswith(b"Response: Follows", start)
            if follows:
                if find(_END_COMMAND, start, end) < 0:
                    tail = find(_END_COMMAND, start)
                    if tail < 0:
                        break
                    end = find(_DELIM, tail)
                    if end < 0:
                        break
            frame = buf[start:end]
            start = scan = end + 4
            if not frame or (frame[0] in _BLANK and not frame.strip()):
                continue
            if len(frame) > self._max:
                self._on_error(f"frame of {len(frame)} bytes exceeds the limit of {self._max}", frame[:200])
                continue
            if frame.startswith(self._skip):
                self.skipped += 1
                continue
            try:
                out.append(_parse_follows_frame(frame) if follows else _parse_plain(frame))
            except FrameError as e:
                self._on_error(str(e), frame[:200])
        return self._keep(buf[start:], out)

    def _keep(self, rest: bytes, out: list[Message]) -> list[Message]:
        """Holds ``rest``, the start of a frame not complete yet; returns ``out``."""
        if len(rest) > self._max:
            self._on_error(f"unterminated frame exceeds the limit of {self._max} bytes", rest[:200])
            self._discarding = True
            self._buf = rest[-3:]
            self._scan = 0
            return out
        self._buf = rest
        # A Follows frame may hold blank lines before --END COMMAND--: search
        # it from its start again; otherwise only the last 3 bytes may begin
        # a frame end that the next chunk completes.
        self._scan = 0 if rest.startswith(b"Response: Follows") else max(0, len(rest) - 3)
        return out


def _check(name: str, value: str) -> None:
    if not _NAME_OK(name):
        raise HeaderInjectionError(
            f"AMI header name {name!r} is not allowed: use letters, digits, '_', '-', '(', ')', '/' and '.'"
        )
    if "\r" in value or "\n" in value:
        raise HeaderInjectionError(
            f"AMI header {name!r} has a line break in its value {value!r}: "
            "CR and LF cannot be sent over AMI (they would end the header)"
        )


def _text(value: object) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def format_message(headers: Mapping[str, object] | Iterable[tuple[str, object]]) -> bytes:
    """Serialize headers to one AMI frame, refusing CR/LF anywhere in them.

    A list or tuple value is sent as the same header repeated (``Variable``).
    """
    items = headers.items() if isinstance(headers, Mapping) else headers
    parts: list[str] = []
    for name, value in items:
        values = value if isinstance(value, (list, tuple)) else (value,)
        for v in values:
            if v is None:
                continue
            text = _text(v)
            _check(name, text)
            parts.append(f"{name}: {text}\r\n")
    parts.append("\r\n")
    return "".join(parts).encode("utf-8")


def format_action(action: str, action_id: str, headers: Mapping[str, object]) -> bytes:
    return format_message([("Action", action), ("ActionID", action_id), *headers.items()])
