"""Request signing (mmkit.binance.signing): Binance's HMAC test vectors, the query+body join,
Ed25519 round trips with a key made here, key-file errors that name the config key but never
the file's contents, and credentials that never show their secret."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mmkit.binance.signing import (
    Credentials,
    ed25519_signature,
    hmac_signature,
    load_ed25519_private_key,
    load_ed25519_public_key,
    mask,
    redact,
    verify_ed25519,
    verify_hmac,
)
from mmkit.errors import ConfigError

DOC_SECRET = "2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9"
DOC_PAYLOAD = ("symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=9000&timeInForce=GTC"
               "&recvWindow=5000&timestamp=1591702613943")
DOC_SIGNATURE = "3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9"
MIXED_QUERY = "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC"
MIXED_BODY = "quantity=1&price=9000&recvWindow=5000&timestamp=1591702613943"
MIXED_SIGNATURE = "30baaf0fab549bbeda7f5ef201898b34122da25fd23c646cac2c529aebe670a4"
API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"


def _pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def test_hmac_matches_binance_doc_vector():
    assert hmac_signature(DOC_SECRET, DOC_PAYLOAD) == DOC_SIGNATURE


def test_hmac_signs_query_immediately_followed_by_body():
    payload = MIXED_QUERY + MIXED_BODY
    assert payload == ("symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTCquantity=1&price=9000"
                       "&recvWindow=5000&timestamp=1591702613943")
    assert hmac_signature(DOC_SECRET, payload) == MIXED_SIGNATURE


def test_hmac_with_ampersand_at_the_join_is_a_different_signature():
    assert hmac_signature(DOC_SECRET, f"{MIXED_QUERY}&{MIXED_BODY}") != MIXED_SIGNATURE


def test_hmac_signature_is_lower_case_hex_of_64_chars():
    sig = hmac_signature(DOC_SECRET, DOC_PAYLOAD)
    assert len(sig) == 64 and sig == sig.lower() and int(sig, 16) >= 0


def test_verify_hmac_accepts_lower_and_upper_case_hex():
    assert verify_hmac(DOC_SECRET, DOC_PAYLOAD, DOC_SIGNATURE)
    assert verify_hmac(DOC_SECRET, DOC_PAYLOAD, DOC_SIGNATURE.upper())


def test_verify_hmac_rejects_wrong_payload_secret_or_signature():
    assert not verify_hmac(DOC_SECRET, DOC_PAYLOAD + "0", DOC_SIGNATURE)
    assert not verify_hmac(DOC_SECRET[:-1] + "0", DOC_PAYLOAD, DOC_SIGNATURE)
    assert not verify_hmac(DOC_SECRET, DOC_PAYLOAD, DOC_SIGNATURE[:-1])
    assert not verify_hmac(DOC_SECRET, DOC_PAYLOAD, "")


def test_ed25519_round_trip_with_key_loaded_from_pem_file(tmp_path):
    key_file = tmp_path / "ed25519.pem"
    key_file.write_bytes(_pem(Ed25519PrivateKey.generate()))
    key = load_ed25519_private_key(key_file)
    signature = ed25519_signature(key, DOC_PAYLOAD)
    assert len(base64.b64decode(signature, validate=True)) == 64
    assert verify_ed25519(key.public_key(), DOC_PAYLOAD, signature)


def test_ed25519_verify_with_public_key_from_pem():
    key = Ed25519PrivateKey.generate()
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    assert verify_ed25519(load_ed25519_public_key(pem), DOC_PAYLOAD,
                          ed25519_signature(key, DOC_PAYLOAD))


def test_ed25519_verify_rejects_other_payload_other_key_and_garbage():
    key = Ed25519PrivateKey.generate()
    signature = ed25519_signature(key, DOC_PAYLOAD)
    assert not verify_ed25519(key.public_key(), DOC_PAYLOAD + "&x=1", signature)
    assert not verify_ed25519(Ed25519PrivateKey.generate().public_key(), DOC_PAYLOAD, signature)
    assert not verify_ed25519(key.public_key(), DOC_PAYLOAD, "not base64!")
    assert not verify_ed25519(key.public_key(), DOC_PAYLOAD, base64.b64encode(b"short").decode())


def test_encrypted_pem_loads_with_its_password(tmp_path):
    key_file = tmp_path / "enc.pem"
    key_file.write_bytes(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw")))
    assert isinstance(load_ed25519_private_key(key_file, b"pw"), Ed25519PrivateKey)
    with pytest.raises(ConfigError):
        load_ed25519_private_key(key_file)


def test_bad_key_file_raises_config_error_naming_the_key_not_the_contents(tmp_path):
    contents = "-----BEGIN PRIVATE KEY-----\nSECRETSECRETSECRETSECRET\n-----END PRIVATE KEY-----\n"
    key_file = tmp_path / "bad.pem"
    key_file.write_text(contents)
    with pytest.raises(ConfigError) as info:
        load_ed25519_private_key(key_file)
    assert info.value.path == "gateway.privateKeyFile"
    assert "gateway.privateKeyFile" in str(info.value)
    assert "SECRETSECRET" not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_missing_key_file_raises_config_error(tmp_path):
    with pytest.raises(ConfigError, match="gateway.privateKeyFile"):
        load_ed25519_private_key(tmp_path / "absent.pem")


def test_non_ed25519_key_file_raises_config_error(tmp_path):
    key_file = tmp_path / "ec.pem"
    key_file.write_bytes(generate_private_key(SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    with pytest.raises(ConfigError, match="gateway.privateKeyFile"):
        load_ed25519_private_key(key_file)


def test_credentials_repr_and_str_hide_secret_and_full_key():
    creds = Credentials(API_KEY, DOC_SECRET)
    for text in (repr(creds), str(creds), f"{creds}", repr([creds])):
        assert DOC_SECRET not in text
        assert API_KEY not in text
        assert "hmac" in text


def test_credentials_repr_with_ed25519_key_hides_the_key():
    creds = Credentials(API_KEY, private_key=Ed25519PrivateKey.generate())
    assert API_KEY not in repr(creds) and "ed25519" in repr(creds)


def test_mask_shows_a_hint_only():
    assert mask(API_KEY) == f"vmPU…({len(API_KEY)} chars)"
    assert mask("short") == "***"
    assert mask(None) == mask("") == "<none>"


def test_credentials_sign_hmac_matches_doc_vector():
    assert Credentials(API_KEY, DOC_SECRET).sign(DOC_PAYLOAD) == DOC_SIGNATURE


def test_credentials_sign_ed25519_verifies():
    key = Ed25519PrivateKey.generate()
    creds = Credentials(API_KEY, private_key=key)
    assert creds.can_sign
    assert verify_ed25519(key.public_key(), DOC_PAYLOAD, creds.sign(DOC_PAYLOAD))


def test_credentials_sign_without_secret_raises_config_error():
    creds = Credentials(API_KEY)
    assert not creds.can_sign
    with pytest.raises(ConfigError) as info:
        creds.sign(DOC_PAYLOAD)
    assert info.value.path == "gateway.apiSecret"
    with pytest.raises(ConfigError):
        Credentials(API_KEY, "").sign(DOC_PAYLOAD)


def test_redact_scrubs_key_secret_and_signature():
    text = (f"POST /fapi/v1/order?{DOC_PAYLOAD}&signature={DOC_SIGNATURE} "
            f"X-MBX-APIKEY: {API_KEY} secret={DOC_SECRET}")
    out = Credentials(API_KEY, DOC_SECRET).redact(text)
    assert API_KEY not in out and DOC_SECRET not in out and DOC_SIGNATURE not in out
    assert "signature=***" in out
    assert "symbol=BTCUSDT" in out


def test_redact_scrubs_signature_in_json_and_url_encoded_base64():
    text = '{"url": "https://x/fapi/v1/order?a=1&signature=ab%2Bcd%3D", "b": "signature=zz"}'
    out = redact(text, [])
    assert "ab%2Bcd" not in out and "zz" not in out
    assert out.count("signature=***") == 2


def test_redact_ignores_empty_and_tiny_secrets():
    assert redact("abc def", ["", "abc"]) == "abc def"
