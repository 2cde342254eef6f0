#!/usr/bin/env python3
"""Sign the postback shapes Apple never published (SPEC.md §7) with the test keys in testdata/keys.

This script is deliberately independent of the Rust code it tests: it builds each signed string
straight from the table in SPEC.md §1 and signs with the `openssl` command line tool, so a mistake
in the Rust composition or signer cannot hide behind the same mistake here.

Run from the repository root:  python3 testdata/vectors/generate.py > testdata/vectors/own.json
ECDSA signatures from openssl are randomized, so each run gives different (equally valid) bytes.
"""
import base64
import json
import subprocess
import sys
import tempfile

SEP = "\u2063"
KEYS = "testdata/keys"

# SPEC.md §1: ordered signed fields per version; "?source" is the optional
# source-app-id / source-domain slot, present only when the key is.
ORDER = {
    "1.0": ["ad-network-id", "campaign-id", "app-id", "transaction-id"],
    "2.0": ["version", "ad-network-id", "campaign-id", "app-id", "transaction-id", "redownload", "?source"],
    "2.1": ["version", "ad-network-id", "campaign-id", "app-id", "transaction-id", "redownload", "?source"],
    "2.2": ["version", "ad-network-id", "campaign-id", "app-id", "transaction-id", "redownload", "?source",
            "fidelity-type"],
    "3.0": ["version", "ad-network-id", "campaign-id", "app-id", "transaction-id", "redownload", "?source",
            "fidelity-type", "did-win"],
    "4.0": ["version", "ad-network-id", "source-identifier", "app-id", "transaction-id", "redownload",
            "?source", "fidelity-type", "did-win", "postback-sequence-index"],
}
CURVE_KEY = {"1.0": "test-p192", "2.0": "test-p192"}


def render(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def signed_string(postback):
    version = postback.get("version", "1.0")
    parts = []
    for field in ORDER[version]:
        if field == "?source":
            for key in ("source-app-id", "source-domain"):
                if key in postback:
                    parts.append(render(postback[key]))
            continue
        parts.append(render(postback[field]))
    return SEP.join(parts)


def openssl_sign_der(key, message: bytes) -> bytes:
    with tempfile.NamedTemporaryFile() as msg:
        msg.write(message)
        msg.flush()
        return subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", f"{KEYS}/{key}.key.pem", msg.name],
            check=True, capture_output=True,
        ).stdout


def der_to_raw(der: bytes) -> bytes:
    # SEQUENCE { INTEGER r, INTEGER s } -> r || s, 32 bytes each.
    assert der[0] == 0x30
    i = 2
    out = b""
    for _ in range(2):
        assert der[i] == 0x02
        length = der[i + 1]
        value = der[i + 2:i + 2 + length].lstrip(b"\x00")
        out += value.rjust(32, b"\x00")
        i += 2 + length
    return out


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def skan(name, note, postback, expect):
    key = CURVE_KEY.get(postback.get("version", "1.0"), "test-p256")
    der = openssl_sign_der(key, signed_string(postback).encode())
    postback = dict(postback)
    extras = postback.pop("_extras", {})
    postback["attribution-signature"] = base64.b64encode(der).decode()
    postback.update(extras)
    return {"name": name, "note": note, "postback": postback, "verifies": True, "key": key,
            "signed_string": signed_string(postback), "expect": expect}


def aak(name, note, kid, key, payload, outer, expect):
    header = json.dumps({"kid": kid, "alg": "ES256"}, separators=(",", ":")).encode()
    signing_input = b64url(header) + "." + b64url(json.dumps(payload, separators=(",", ":")).encode())
    raw = der_to_raw(openssl_sign_der(key, signing_input.encode()))
    postback = {"jws-string": signing_input + "." + b64url(raw)}
    postback.update(outer)
    return {"name": name, "note": note, "postback": postback, "verifies": True, "key": key,
            "expect": expect}


NET = "test123.skadnetwork"
APP = 525463029
vectors = [
    skan("own-skan4-source-app-id", "4.0 first postback of an app ad at tier 3: source-app-id fills the "
         "source slot; source-identifier keeps a leading zero.",
         {"version": "4.0", "ad-network-id": NET, "source-identifier": "0417", "app-id": APP,
          "transaction-id": "a1b2c3d4-0000-4000-8000-000000000001", "redownload": False,
          "source-app-id": 1234567891, "fidelity-type": 1, "did-win": True, "conversion-value": 42,
          "postback-sequence-index": 0},
         {"dedup_key": f"skan:{NET}:a1b2c3d4-0000-4000-8000-000000000001:0", "window": 0,
          "tier_hint": 3, "conversion_value": {"kind": "fine", "value": 42}}),
    skan("own-skan4-no-source", "4.0 first postback at tier 2: fine value, no source-app-id or "
         "source-domain, so the signed string has no source slot at all.",
         {"version": "4.0", "ad-network-id": NET, "source-identifier": "417", "app-id": APP,
          "transaction-id": "a1b2c3d4-0000-4000-8000-000000000002", "redownload": False,
          "fidelity-type": 0, "did-win": True, "conversion-value": 7, "postback-sequence-index": 0},
         {"dedup_key": f"skan:{NET}:a1b2c3d4-0000-4000-8000-000000000002:0", "window": 0,
          "tier_hint": 2, "conversion_value": {"kind": "fine", "value": 7}}),
    skan("own-skan4-window1-coarse", "4.0 second postback (window 1): two digits and a coarse value.",
         {"version": "4.0", "ad-network-id": NET, "source-identifier": "17", "app-id": APP,
          "transaction-id": "a1b2c3d4-0000-4000-8000-000000000003", "redownload": False,
          "fidelity-type": 1, "did-win": True, "coarse-conversion-value": "medium",
          "postback-sequence-index": 1},
         {"dedup_key": f"skan:{NET}:a1b2c3d4-0000-4000-8000-000000000003:1", "window": 1,
          "tier_hint": None, "conversion_value": {"kind": "coarse", "value": "medium"}}),
    skan("own-skan4-window2-coarse-redownload", "4.0 third postback (window 2) of a redownload.",
         {"version": "4.0", "ad-network-id": NET, "source-identifier": "17", "app-id": APP,
          "transaction-id": "a1b2c3d4-0000-4000-8000-000000000003", "redownload": True,
          "fidelity-type": 1, "did-win": True, "coarse-conversion-value": "low",
          "postback-sequence-index": 2},
         {"dedup_key": f"skan:{NET}:a1b2c3d4-0000-4000-8000-000000000003:2", "window": 2,
          "tier_hint": None, "conversion_value": {"kind": "coarse", "value": "low"}}),
    skan("own-skan4-tier0", "4.0 first postback at tier 0: two digits, no value, no source.",
         {"version": "4.0", "ad-network-id": NET, "source-identifier": "05", "app-id": APP,
          "transaction-id": "a1b2c3d4-0000-4000-8000-000000000005", "redownload": False,
          "fidelity-type": 1, "did-win": True, "postback-sequence-index": 0},
         {"dedup_key": f"skan:{NET}:a1b2c3d4-0000-4000-8000-000000000005:0", "window": 0,
          "tier_hint": 0, "conversion_value": {"kind": "none"}}),
    skan("own-skan4-nonwinning", "4.0 nonwinning postback: did-win false, no value, no source.",
         {"version": "4.0", "ad-network-id": NET, "source-identifier": "17", "app-id": APP,
          "transaction-id": "a1b2c3d4-0000-4000-8000-000000000006", "redownload": False,
          "fidelity-type": 0, "did-win": False, "postback-sequence-index": 0},
         {"dedup_key": f"skan:{NET}:a1b2c3d4-0000-4000-8000-000000000006:0", "window": 0,
          "tier_hint": None, "conversion_value": {"kind": "none"}}),
    skan("own-skan4-source-app-id-zero", "4.0 test postback: source-app-id 0 and conversion-value 0 are "
         "present, so both are included (the source slot is signed as \"0\").",
         {"version": "4.0", "ad-network-id": NET, "source-identifier": "1234", "app-id": APP,
          "transaction-id": "a1b2c3d4-0000-4000-8000-000000000007", "redownload": False,
          "source-app-id": 0, "fidelity-type": 1, "did-win": True, "conversion-value": 0,
          "postback-sequence-index": 0},
         {"dedup_key": f"skan:{NET}:a1b2c3d4-0000-4000-8000-000000000007:0", "window": 0,
          "tier_hint": 3, "conversion_value": {"kind": "fine", "value": 0}}),
    skan("own-skan4-forwarded", "4.0 postback as an ad network forwards it: its own keys added after "
         "Apple's, plus country-code; none of them is signed.",
         {"version": "4.0", "ad-network-id": NET, "source-identifier": "5239", "app-id": APP,
          "transaction-id": "a1b2c3d4-0000-4000-8000-000000000008", "redownload": False,
          "source-domain": "example.com", "fidelity-type": 1, "did-win": True, "conversion-value": 63,
          "postback-sequence-index": 0, "country-code": "DE",
          "_extras": {"timestamp": "1732270000", "ip": "203.0.113.9", "adjust-tracker": "abc123"}},
         {"dedup_key": f"skan:{NET}:a1b2c3d4-0000-4000-8000-000000000008:0", "window": 0,
          "tier_hint": 3, "conversion_value": {"kind": "fine", "value": 63},
          "unsigned_fields": ["conversion-value", "country-code", "timestamp", "ip", "adjust-tracker"]}),
    skan("own-skan10-no-version-key", "1.0 postback without a version key (P-192): four signed values.",
         {"ad-network-id": NET, "campaign-id": 51, "app-id": 1176027022,
          "transaction-id": "583e867c-0bc5-4980-8766-000000000001"},
         {"dedup_key": f"skan:{NET}:583e867c-0bc5-4980-8766-000000000001:0", "window": 0,
          "tier_hint": None, "conversion_value": {"kind": "none"}}),
    skan("own-skan10-version-and-redownload", "1.0 postback as seen in the wild: version \"1.0\" and "
         "redownload present, yet only the four 1.0 values are signed.",
         {"version": "1.0", "ad-network-id": NET, "campaign-id": 51, "app-id": 1176027022,
          "transaction-id": "583e867c-0bc5-4980-8766-000000000002", "redownload": False},
         {"dedup_key": f"skan:{NET}:583e867c-0bc5-4980-8766-000000000002:0", "window": 0,
          "tier_hint": None, "conversion_value": {"kind": "none"},
          "unsigned_fields": ["version", "redownload"]}),
    skan("own-skan20-no-source-app-id", "2.0 postback without source-app-id (P-192).",
         {"version": "2.0", "ad-network-id": NET, "campaign-id": 42, "app-id": APP,
          "transaction-id": "6aafb7a5-0170-41b5-bbe4-000000000020", "redownload": False,
          "conversion-value": 5},
         {"dedup_key": f"skan:{NET}:6aafb7a5-0170-41b5-bbe4-000000000020:0", "window": 0,
          "tier_hint": None, "conversion_value": {"kind": "fine", "value": 5}}),
    skan("own-skan21-no-source-app-id", "2.1 postback without source-app-id (P-256).",
         {"version": "2.1", "ad-network-id": NET, "campaign-id": 1, "app-id": APP,
          "transaction-id": "6aafb7a5-0170-41b5-bbe4-000000000021", "redownload": True},
         {"dedup_key": f"skan:{NET}:6aafb7a5-0170-41b5-bbe4-000000000021:0", "window": 0,
          "tier_hint": None, "conversion_value": {"kind": "none"}}),
    skan("own-skan22-view-through", "2.2 view-through postback (fidelity-type 0).",
         {"version": "2.2", "ad-network-id": NET, "campaign-id": 100, "app-id": APP,
          "transaction-id": "6aafb7a5-0170-41b5-bbe4-000000000022", "redownload": False,
          "source-app-id": 1234567891, "fidelity-type": 0, "conversion-value": 63},
         {"dedup_key": f"skan:{NET}:6aafb7a5-0170-41b5-bbe4-000000000022:0", "window": 0,
          "tier_hint": None, "conversion_value": {"kind": "fine", "value": 63}}),
    skan("own-skan30-source-app-id-zero", "3.0 winning test postback with source-app-id 0.",
         {"version": "3.0", "ad-network-id": NET, "campaign-id": 0, "app-id": APP,
          "transaction-id": "6aafb7a5-0170-41b5-bbe4-000000000030", "redownload": False,
          "source-app-id": 0, "fidelity-type": 1, "did-win": True, "conversion-value": 0},
         {"dedup_key": f"skan:{NET}:6aafb7a5-0170-41b5-bbe4-000000000030:0", "window": 0,
          "tier_hint": None, "conversion_value": {"kind": "fine", "value": 0}}),
    aak("own-aak-production-window1", "AdAttributionKit window-1 postback under the test production kid; "
        "coarse value and interaction type travel outside the JWS.",
        "test-production/0", "test-p256",
        {"ad-network-identifier": NET, "advertised-item-identifier": 10738027756,
         "conversion-type": "download", "did-win": True, "impression-type": "app-impression",
         "marketplace-identifier": "com.apple.AppStore",
         "postback-identifier": "3F2504E0-4F89-41D3-9A0C-0305E82C3301", "postback-sequence-index": 1,
         "source-identifier": "42"},
        {"coarse-conversion-value": "high", "ad-interaction-type": "click"},
        {"dedup_key": "aak:3f2504e0-4f89-41d3-9a0c-0305e82c3301", "window": 1, "tier_hint": None,
         "development": False, "conversion_value": {"kind": "coarse", "value": "high"}}),
    aak("own-aak-production-window0", "AdAttributionKit first postback of a redownload at tier 3: fine value, "
        "publisher item, country code.",
        "test-production/0", "test-p256",
        {"ad-network-identifier": NET, "advertised-item-identifier": APP,
         "conversion-type": "redownload", "did-win": True, "impression-type": "app-impression",
         "marketplace-identifier": "com.apple.AppStore", "publisher-item-identifier": 1234567891,
         "postback-identifier": "9d3c1a52-7f1e-4b9a-8d2e-5a6b7c8d9e0f", "postback-sequence-index": 0,
         "source-identifier": "4217"},
        {"conversion-value": 12, "ad-interaction-type": "view", "country-code": "FR"},
        {"dedup_key": "aak:9d3c1a52-7f1e-4b9a-8d2e-5a6b7c8d9e0f", "window": 0, "tier_hint": 3,
         "development": False, "conversion_value": {"kind": "fine", "value": 12}}),
    aak("own-aak-development", "AdAttributionKit postback under the test development kid: it verifies, "
        "and must be reported as development.",
        "test-development/0", "test-development-p256",
        {"ad-network-identifier": "development.adattributionkit", "advertised-item-identifier": 0,
         "conversion-type": "download", "did-win": True, "impression-type": "app-impression",
         "postback-identifier": "00000000-0000-4000-8000-0000000000D0", "postback-sequence-index": 0,
         "publisher-item-identifier": 0, "source-identifier": "1234"},
        {"conversion-value": 1, "ad-interaction-type": "click"},
        {"dedup_key": "aak:00000000-0000-4000-8000-0000000000d0", "window": 0, "tier_hint": 3,
         "development": True, "conversion_value": {"kind": "fine", "value": 1}}),
]

json.dump(vectors, sys.stdout, indent=2, ensure_ascii=False)
sys.stdout.write("\n")
