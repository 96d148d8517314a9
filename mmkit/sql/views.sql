-- Views over the journal (mmkit/journal.py). {fills}, {marks} and {funding} are the scans of
-- the tables' files: read_json_auto over the JSON lines as written, or read_parquet after
-- `mmkit journal compact` (mmkit.journal.source), with `date` and `symbol` from the partitions.
-- Decimal strings become DECIMAL(38, 12); fills are deduplicated by exchange ids and time
-- (mmkit.journal.FILL_KEY), so a fill written twice (a restart, a replayed stream) counts once.

CREATE OR REPLACE VIEW fills AS
SELECT DISTINCT ON (symbol, tradeId, orderId, ts)
    symbol, tradeId, orderId, clientOrderId, side,
    ts, to_timestamp(ts / 1000.0) AS time,
    CAST(price AS DECIMAL(38, 12)) AS price,
    CAST(qty AS DECIMAL(38, 12)) AS qty,
    CAST(price AS DECIMAL(38, 12)) * CAST(qty AS DECIMAL(38, 12)) AS notional,
    CASE WHEN side = 'BUY' THEN 1 ELSE -1 END AS sign,
    maker, CAST(commission AS DECIMAL(38, 12)) AS fee, commissionAsset AS fee_asset,
    CAST(realizedPnl AS DECIMAL(38, 12)) AS realized_pnl, run
FROM {fills}
ORDER BY symbol, tradeId, orderId, ts;

CREATE OR REPLACE VIEW marks AS
SELECT symbol, ts, to_timestamp(ts / 1000.0) AS time,
       CAST(mid AS DECIMAL(38, 12)) AS mid,
       CAST(position AS DECIMAL(38, 12)) AS position,
       CAST(netPnl AS DECIMAL(38, 12)) AS net_pnl, run
FROM {marks}
WHERE mid IS NOT NULL;

CREATE OR REPLACE VIEW funding AS
SELECT DISTINCT ON (symbol, ts, run) symbol, ts, to_timestamp(ts / 1000.0) AS time,
       CAST(amount AS DECIMAL(38, 12)) AS amount, asset, run
FROM {funding};
