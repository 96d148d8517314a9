-- The scalping question, answered with the numbers behind it. Same parameters as
-- pnl_report.sql. The edge of a fill is what the market gave it 5 s later (the 5 s markout,
-- spread capture included); the strategy scalps profitably when that edge beats the fee. The
-- answer stays on the fills' edge, not on the equity change: the equity change adds what the
-- inventory made or lost while the market moved (direction, not scalping), and the rows'
-- equity_change already shows it per period.
--
-- max_drawdown: the largest fall of equity from its running peak, at every mark in the range
-- (the `equity` table of equity.sql, which runs first).
WITH f AS (
    SELECT * FROM fills
    WHERE ts >= {since_ms} AND ts < {until_ms} AND symbol LIKE '{symbol}'
),
later AS (
    SELECT f.*, m5.mid AS mid5
    FROM f ASOF LEFT JOIN marks m5 ON f.symbol = m5.symbol AND f.ts + 5000 >= m5.ts
),
curve AS (
    SELECT symbol, max(equity) OVER (PARTITION BY symbol ORDER BY ts) - equity AS drawdown
    FROM equity
)
SELECT
    'verdict' AS type, l.symbol, max(l.ts) AS ts,
    count(*) AS fills,
    round(sum(l.realized_pnl) - sum(l.fee) + coalesce((SELECT sum(amount) FROM funding g
        WHERE g.symbol = l.symbol AND g.ts >= {since_ms} AND g.ts < {until_ms}), 0), 8)
        AS net_pnl,
    round(10000 * sum(l.sign * (l.mid5 - l.price) * l.qty) / sum(l.notional), 3)
        AS edge_5s_bps,
    round(10000 * sum(l.fee) / sum(l.notional), 3) AS fee_bps,
    round(10000 * (sum(l.sign * (l.mid5 - l.price) * l.qty) - sum(l.fee)) / sum(l.notional), 3)
        AS edge_after_fees_bps,
    (SELECT round(max(drawdown), 8) FROM curve c WHERE c.symbol = l.symbol) AS max_drawdown,
    CASE
        WHEN count(*) < 30 THEN 'not enough fills to tell (fewer than 30)'
        WHEN sum(l.sign * (l.mid5 - l.price) * l.qty) - sum(l.fee) > 0
            THEN 'yes: the 5 s edge per fill beats the fees'
        ELSE 'no: after fees the fills lose to the market within 5 s'
    END AS scalping
FROM later l
GROUP BY l.symbol
ORDER BY l.symbol;
