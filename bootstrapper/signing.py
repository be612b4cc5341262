"""Ed25519 keys and DSSE envelopes (the signed form of an in-toto statement).

A DSSE signature is over the pre-authentication encoding (PAE) of the payload type and
the payload, never over the JSON around them. Ed25519 signatures are deterministic: the
same statement signed with the same key gives the same bytes, so signed provenance of
an unchanged wheel is not rewritten either. A key's id is the sha256 of its raw public
key (hex), the same wherever the PEM file lives.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import UsageError

if TYPE_CHECKING:
    # Imported where keys are used: every run starts the CLI, few runs sign.
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

PAYLOAD_TYPE = "application/vnd.in-toto+json"


class KeyFileError(UsageError):
    """A key file that cannot be used (exit status 2: the user chose it)."""


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1's pre-authentication encoding of ``payload`` as ``payload_type``."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def key_id(public: Ed25519PublicKey) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class Signer:
    """An Ed25519 private key and its id."""

    key: Ed25519PrivateKey
    keyid: str

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data)


@dataclass(frozen=True)
class Verifier:
    """An Ed25519 public key and its id."""

    key: Ed25519PublicKey
    keyid: str

    def verifies(self, signature: bytes, data: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature

        try:
            self.key.verify(signature, data)
        except InvalidSignature:
            return False
        return True


def _read_pem(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise KeyFileError(f"cannot read the {what} {path}: {e.strerror or e}") from None


def load_signer(path: Path) -> Signer:
    """The Ed25519 private key in ``path`` (PEM, PKCS#8, unencrypted: what ``openssl
    genpkey -algorithm ed25519`` writes)."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    data = _read_pem(path, "signing key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise KeyFileError(
            f"{path} is an encrypted private key; give an unencrypted Ed25519 key "
            "(openssl genpkey -algorithm ed25519 -out KEY.pem)"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise KeyFileError(
            f"{path} is not a PEM private key; give an Ed25519 key "
            "(openssl genpkey -algorithm ed25519 -out KEY.pem)"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} is a {_kind(key)} key; provenance is signed with Ed25519 only")
    return Signer(key, key_id(key.public_key()))


def load_verifier(path: Path) -> Verifier:
    """The Ed25519 public key in ``path`` (PEM; a private key's file gives its public
    half)."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    data = _read_pem(path, "public key")
    key: Any
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        try:
            key = serialization.load_pem_private_key(data, password=None).public_key()
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise KeyFileError(
                f"{path} is not a PEM public key (make one with "
                "'openssl pkey -in KEY.pem -pubout -out PUBLIC.pem')"
            ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path} is a {_kind(key)} key; provenance is signed with Ed25519 only")
    return Verifier(key, key_id(key))


def _kind(key: object) -> str:
    return type(key).__name__.removeprefix("_").replace("PrivateKey", "").replace("PublicKey", "")


def envelope(payload: bytes, signer: Signer) -> dict[str, Any]:
    """A DSSE envelope of ``payload`` (an in-toto statement) signed by ``signer``."""
    signature = signer.sign(pae(PAYLOAD_TYPE, payload))
    return {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": signer.keyid, "sig": base64.b64encode(signature).decode()}],
    }


def is_envelope(document: object) -> bool:
    return isinstance(document, Mapping) and "payloadType" in document and "payload" in document


def decode_base64(text: object) -> bytes:
    """Standard or URL-safe base64 (DSSE allows either); ValueError if neither."""
    if not isinstance(text, str):
        raise ValueError("not a base64 string")
    try:
        return base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
    except binascii.Error as e:
        raise ValueError(f"not base64: {e}") from None
