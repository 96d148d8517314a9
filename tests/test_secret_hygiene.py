"""A malformed API key or secret (whitespace, a CR/LF from an env file, non-ASCII) is a
config error naming the setting, never its value, before any request is written."""

from __future__ import annotations

import pytest

from mmkit.binance.signing import Credentials
from mmkit.errors import ConfigError
from tests.test_cli_account import mmkit

KEY = "FAKEKEYzzq123456789"


@pytest.mark.parametrize(("key", "secret", "where"), [
    (KEY + "\r\n", "s3cr3tvalue", "gateway.apiKey"),
    (KEY + " ", "s3cr3tvalue", "gateway.apiKey"),
    (KEY + "é", "s3cr3tvalue", "gateway.apiKey"),
    (KEY, "s3cr3t value", "gateway.apiSecret"),
])
def test_credentials_refuse_what_a_header_cannot_carry(key, secret, where):
    with pytest.raises(ConfigError) as err:
        Credentials(key, secret)
    assert err.value.path == where
    assert KEY not in str(err.value) and "s3cr3t" not in str(err.value)


@pytest.mark.parametrize("key", [KEY + "\n", KEY + "é"])
def test_a_command_with_a_malformed_key_says_so_without_the_key(server, tmp_path, key):
    result = mmkit(server.base_url, "-vv", "balance", cwd=tmp_path,
                   env={"MM_GATEWAY_API_KEY": key, "MM_GATEWAY_API_SECRET": "s3cr3tvalue"})
    assert result.returncode == 2
    assert "gateway.apiKey" in result.stderr and "Traceback" not in result.stderr
    assert KEY not in result.stdout + result.stderr
    assert "s3cr3t" not in result.stdout + result.stderr
