"""Telephone numbers and devices: E.164 normalisation and trunk/line classification."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

import phonenumbers

LINE, TRUNK, LOCAL = "line", "trunk", "local"


class NumberNormalizer:
    """Turns what Asterisk shows as a number into E.164, or ``""`` for
    internal extensions and things that are not numbers.

    ``country_code`` (e.g. ``"420"``) decides how national numbers read;
    ``dial_prefix`` is the outside-line digit(s) agents dial first (``"0"`` in
    many PBXs), stripped before reading the number.
    """

    def __init__(self, country_code: str = "420", dial_prefix: str = "", min_length: int = 7) -> None:
        self.country_code = country_code.lstrip("+")
        self.dial_prefix = dial_prefix
        self.min_length = min_length
        try:
            self._region = phonenumbers.region_code_for_country_code(int(self.country_code))
        except ValueError:
            self._region = "ZZ"
        self._cache: dict[str, str] = {}

    def __call__(self, number: str) -> str:
        cached = self._cache.get(number)
        if cached is not None:
            return cached
        result = self._normalize(number)
        if len(self._cache) < 100_000:
            self._cache[number] = result
        return result

    def _normalize(self, number: str) -> str:
        digits = number.strip().replace(" ", "").replace("-", "")
        if not digits or len(digits.lstrip("+")) < self.min_length:
            return ""
        if digits.startswith("+"):
            candidates = [digits]
        elif digits.startswith("00"):
            candidates = ["+" + digits[2:]]
        else:
            if self.dial_prefix and digits.startswith(self.dial_prefix):
                digits = digits[len(self.dial_prefix):]
            candidates = []
            if digits.startswith(self.country_code):
                candidates.append("+" + digits)
            candidates.append(digits)
        for cand in candidates:
            try:
                parsed = phonenumbers.parse(cand, None if cand.startswith("+") else self._region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(parsed):
                return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
        return ""


class DeviceClassifier:
    """Says whether a device (``SIP/1001``) is a phone line, a trunk or a Local channel.

    With ``trunks`` patterns (fnmatch, e.g. ``["SIP/carrier*", "PJSIP/trunk-*"]``)
    configured, a device matching them is a trunk and every other is a line.
    Without, a device whose name after the technology is all digits is a line
    (extensions are numbers in almost every PBX) and anything else a trunk.
    """

    def __init__(self, trunks: Sequence[str] = (), lines: Sequence[str] = ()) -> None:
        self.trunks = list(trunks)
        self.lines = list(lines)
        self._cache: dict[str, str] = {}

    def __call__(self, device: str) -> str:
        kind = self._cache.get(device)
        if kind is None:
            kind = self._cache[device] = self._classify(device)
        return kind

    def _classify(self, device: str) -> str:
        if device.startswith("Local/"):
            return LOCAL
        if any(fnmatch.fnmatchcase(device, p) for p in self.lines):
            return LINE
        if self.trunks:
            return TRUNK if any(fnmatch.fnmatchcase(device, p) for p in self.trunks) else LINE
        _, _, peer = device.partition("/")
        return LINE if peer.isdigit() else TRUNK
