-- Did it make money, and why. Parameters: {bucket} ('hour' or 'day'), {since_ms}, {until_ms},
-- {symbol} (a symbol, or '%' for all).
--
-- Realized PnL is the venue's, per fill (average cost: closing quantity × (price − average
-- entry)); fees are the commissions paid (negative: rebates); net = realized − fees.
-- Spread capture: how far from the mid each fill was, in our favour (bought below / sold
-- above), at the mark just before the fill. Markouts: the mid h seconds after the fill against
-- the fill price, in our favour; a negative markout is adverse selection. Both in quote asset
-- and in bps of notional.

WITH f AS (
    SELECT * FROM fills
    WHERE ts >= {since_ms} AND ts < {until_ms} AND symbol LIKE '{symbol}'
),
at_fill AS (
    SELECT f.*, m.mid AS mid0
    FROM f ASOF LEFT JOIN marks m ON f.symbol = m.symbol AND f.ts >= m.ts
),
later AS (
    -- each horizon is one ASOF join: the last mark at or before fill time + h
    SELECT a.*, m1.mid AS mid1, m5.mid AS mid5, m30.mid AS mid30, m60.mid AS mid60
    FROM at_fill a
    ASOF LEFT JOIN marks m1 ON a.symbol = m1.symbol AND a.ts + 1000 >= m1.ts
    ASOF LEFT JOIN marks m5 ON a.symbol = m5.symbol AND a.ts + 5000 >= m5.ts
    ASOF LEFT JOIN marks m30 ON a.symbol = m30.symbol AND a.ts + 30000 >= m30.ts
    ASOF LEFT JOIN marks m60 ON a.symbol = m60.symbol AND a.ts + 60000 >= m60.ts
),
per AS (
    SELECT symbol, date_trunc('{bucket}', time) AS bucket_start,
        count(*) AS fills,
        round(avg(CASE WHEN maker THEN 1.0 ELSE 0.0 END), 4) AS maker_share,
        sum(notional) AS volume, sum(realized_pnl) AS realized, sum(fee) AS fees,
        sum(sign * (mid0 - price) * qty) AS capture,
        sum(sign * (mid1 - price) * qty) AS out1, sum(sign * (mid5 - price) * qty) AS out5,
        sum(sign * (mid30 - price) * qty) AS out30, sum(sign * (mid60 - price) * qty) AS out60
    FROM later
    GROUP BY ALL
),
fund AS (
    SELECT symbol, date_trunc('{bucket}', time) AS bucket_start, sum(amount) AS funding
    FROM funding
    WHERE ts >= {since_ms} AND ts < {until_ms} AND symbol LIKE '{symbol}'
    GROUP BY ALL
)
SELECT
    'pnl' AS type,
    p.symbol,
    epoch_ms(p.bucket_start) AS ts,
    strftime(p.bucket_start, '%Y-%m-%d %H:%M') AS period,
    fills,
    maker_share,
    round(volume, 2) AS volume,
    round(realized, 8) AS realized_pnl,
    round(fees, 8) AS fees,
    round(coalesce(f.funding, 0), 8) AS funding,
    round(realized - fees + coalesce(f.funding, 0), 8) AS net_pnl,
    round(capture, 8) AS spread_capture,
    round(10000 * capture / volume, 3) AS spread_capture_bps,
    round(10000 * out1 / volume, 3) AS markout_1s_bps,
    round(10000 * out5 / volume, 3) AS markout_5s_bps,
    round(10000 * out30 / volume, 3) AS markout_30s_bps,
    round(10000 * out60 / volume, 3) AS markout_60s_bps,
    round(10000 * fees / volume, 3) AS fee_bps
FROM per p
LEFT JOIN fund f ON f.symbol = p.symbol AND f.bucket_start = p.bucket_start
ORDER BY p.symbol, ts;
