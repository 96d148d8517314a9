"""Request signing for Binance (HMAC-SHA256 and Ed25519), used by the client to sign and by the
simulator to verify, plus redaction so secrets never reach output.

The signed payload is the query string immediately followed by the body, byte for byte as
sent, with no `&` at the join (see docs/simulator.md and the reference sheet).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from mmkit.errors import ConfigError


def hmac_signature(secret: str, payload: str) -> str:
    """Lower-case hex HMAC-SHA256 of `payload` keyed by `secret`."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def ed25519_signature(private_key: Ed25519PrivateKey, payload: str) -> str:
    """Base64 Ed25519 signature of `payload` (URL-encode it when it travels in a query)."""
    return base64.b64encode(private_key.sign(payload.encode())).decode()


def verify_hmac(secret: str, payload: str, signature: str) -> bool:
    """Binance accepts the hex signature in any case."""
    return hmac.compare_digest(hmac_signature(secret, payload), signature.lower())


def verify_ed25519(public_key: Ed25519PublicKey, payload: str, signature: str) -> bool:
    try:
        public_key.verify(base64.b64decode(signature, validate=True), payload.encode())
    except (InvalidSignature, ValueError):
        return False
    return True


def load_ed25519_private_key(path: str | Path, password: bytes | None = None) -> Ed25519PrivateKey:
    """Read a PKCS#8 PEM Ed25519 private key; the error names the file, never its contents."""
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=password)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"cannot read an Ed25519 private key ({type(exc).__name__})",
                          "gateway.privateKeyFile") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError("the key file does not hold an Ed25519 private key",
                          "gateway.privateKeyFile")
    return key


def load_ed25519_public_key(pem: bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def secret_problem(value: str) -> str | None:
    """Why an API key or secret cannot be used as it is, or None. It goes into an HTTP header
    or a signature as it is, so whitespace, a line break or a non-ASCII character would fail
    deep in a request (and the HTTP library's error would quote it). Never shows the value."""
    if any(c.isspace() for c in value):
        return ("contains whitespace or a line break (a CRLF env file, or a stray space when "
                "pasting it?)")
    if not value.isascii():
        return "contains non-ASCII characters (a key is plain letters and digits)"
    if not value.isprintable():
        return "contains control characters (a key is plain letters and digits)"
    return None


@dataclass(frozen=True, repr=False)
class Credentials:
    """An API key with either an HMAC secret or an Ed25519 private key. Its repr and str never
    show the secret; `redact` scrubs both key and secret from any text."""

    api_key: str
    api_secret: str | None = None
    private_key: Ed25519PrivateKey | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        for value, where in ((self.api_key, "gateway.apiKey"),
                             (self.api_secret or "", "gateway.apiSecret")):
            problem = secret_problem(value)
            if problem:
                raise ConfigError(problem, where)

    def sign(self, payload: str) -> str:
        if self.private_key is not None:
            return ed25519_signature(self.private_key, payload)
        if self.api_secret:
            return hmac_signature(self.api_secret, payload)
        raise ConfigError("an API secret or an Ed25519 private key is needed to sign",
                          "gateway.apiSecret")

    @property
    def can_sign(self) -> bool:
        return self.private_key is not None or bool(self.api_secret)

    def redact(self, text: str) -> str:
        return redact(text, [self.api_key, self.api_secret or ""])

    def __repr__(self) -> str:
        kind = "ed25519" if self.private_key is not None else "hmac" if self.api_secret else "none"
        return f"Credentials(api_key={mask(self.api_key)}, signing={kind})"

    __str__ = __repr__


def mask(secret: str | None) -> str:
    """A hint of which key this is, without the key: first 4 characters and the length."""
    if not secret:
        return "<none>"
    return f"{secret[:4]}…({len(secret)} chars)" if len(secret) > 8 else "***"


_SIGNATURE = re.compile(r"(signature=)[^&\s\"']+")


def redact(text: str, secrets: list[str]) -> str:
    """Replace every occurrence of each secret, and any signature parameter, with ***."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return _SIGNATURE.sub(r"\1***", text)
