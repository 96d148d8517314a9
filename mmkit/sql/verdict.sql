-- The scalping question, answered with the numbers behind it. Same parameters as
-- pnl_report.sql. The edge of a fill is what the market gave it 5 s later (the 5 s markout,
-- spread capture included); the strategy scalps profitably when that edge beats the fee. The
-- answer stays on the fills' edge, not on the equity change: the equity change adds what the
-- inventory made or lost while the market moved (direction, not scalping), and the rows'
-- equity_change already shows it per period.
--
-- max_drawdown: the largest fall of equity from its running peak, at every mark in the range.
-- Equity at a mark = position × mid − Σ (side × price × qty + fee) + Σ funding, over the fills
-- and funding at or before the mark (= realized − fees + funding + unrealized at the mid, up
-- to a constant), the position from the fills as in pnl_report.sql. Not the marks' netPnl,
-- which restarts at 0 with each run and leaves out funding in `run`.
WITH f AS (
    SELECT * FROM fills
    WHERE ts >= {since_ms} AND ts < {until_ms} AND symbol LIKE '{symbol}'
),
later AS (
    SELECT f.*, m5.mid AS mid5
    FROM f ASOF LEFT JOIN marks m5 ON f.symbol = m5.symbol AND f.ts + 5000 >= m5.ts
),
first_mark AS (
    SELECT symbol, min(ts) AS ts, arg_min(position, ts) AS position
    FROM marks WHERE symbol LIKE '{symbol}'
    GROUP BY symbol
),
anchor AS (
    -- the position the journal starts with: the first mark's, less the fills it includes
    SELECT fm.symbol, fm.position - coalesce(sum(x.sign * x.qty), 0) AS position
    FROM first_mark fm
    LEFT JOIN fills x ON x.symbol = fm.symbol AND x.ts <= fm.ts
    GROUP BY fm.symbol, fm.position
),
flows AS (
    SELECT symbol, ts, sum(sign * qty) AS qty_change, sum(sign * notional + fee) AS cash_out
    FROM fills WHERE ts < {until_ms} AND symbol LIKE '{symbol}'
    GROUP BY ALL
    UNION ALL
    SELECT symbol, ts, 0, -sum(amount)
    FROM funding WHERE ts < {until_ms} AND symbol LIKE '{symbol}'
    GROUP BY ALL
),
running AS (
    SELECT symbol, ts, sum(qty_change) OVER w AS qty, sum(cash_out) OVER w AS cash_out
    FROM flows
    WINDOW w AS (PARTITION BY symbol ORDER BY ts)
),
equity AS (
    SELECT m.symbol, m.ts,
        (coalesce(a.position, 0) + coalesce(r.qty, 0)) * m.mid - coalesce(r.cash_out, 0)
            AS equity
    FROM (SELECT * FROM marks
          WHERE ts >= {since_ms} AND ts < {until_ms} AND symbol LIKE '{symbol}') m
    ASOF LEFT JOIN running r ON m.symbol = r.symbol AND m.ts >= r.ts
    LEFT JOIN anchor a ON a.symbol = m.symbol
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
