"""The Binance USDⓈ-M wire: signing, the REST client, WebSocket streams and wire↔model parsing."""
