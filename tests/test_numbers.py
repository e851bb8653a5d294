"""E.164 normalisation and device classification, as an agent bar user would see them."""

import pytest

from ucs.calls.numbers import DeviceClassifier, NumberNormalizer


@pytest.mark.parametrize(
    "raw, cc, prefix, want",
    [
        ("420777123456", "420", "", "+420777123456"),   # carrier sends the country code without +
        ("+420777123456", "420", "", "+420777123456"),
        ("00420777123456", "420", "", "+420777123456"),
        ("777123456", "420", "", "+420777123456"),      # national number
        ("0420777987654", "420", "0", "+420777987654"),  # outside-line prefix 0 stripped
        ("02071234567", "44", "", "+442071234567"),     # UK national with trunk prefix 0
        ("+12025550123", "420", "", "+12025550123"),
        ("1001", "420", "", ""),                        # an extension is not a public number
        ("anonymous", "420", "", ""),
        ("", "420", "", ""),
        ("12345678901234567890", "420", "", ""),
    ],
)
def test_normalize(raw: str, cc: str, prefix: str, want: str) -> None:
    assert NumberNormalizer(cc, prefix)(raw) == want


@pytest.mark.parametrize(
    "device, trunks, want",
    [
        ("SIP/1001", (), "line"),
        ("PJSIP/2001", (), "line"),
        ("SIP/carrier", (), "trunk"),
        ("Local/1003@internal", (), "local"),
        ("SIP/carrier", ("SIP/carrier*",), "trunk"),
        ("PJSIP/alice", ("SIP/carrier*",), "line"),  # with trunks configured, the rest are lines
        ("SIP/5000", ("SIP/5*",), "trunk"),
    ],
)
def test_classify(device: str, trunks: tuple[str, ...], want: str) -> None:
    assert DeviceClassifier(trunks)(device) == want
