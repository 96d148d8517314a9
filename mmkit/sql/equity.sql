-- The equity curve: at every mark in the range, equity = position × mid − Σ (side × price ×
-- qty + fee) + Σ funding, over the fills and funding at or before the mark (= realized − fees
-- + funding + unrealized at the mid, up to a constant per symbol). The position is the fills'
-- sum, anchored to the first mark's position less the fills it already includes, as in
-- pnl_report.sql. Not the marks' netPnl, which restarts at 0 with each run and leaves out
-- funding in `run`. Same parameters as pnl_report.sql; verdict.sql (max drawdown) and
-- `--plot` read the table it makes.
CREATE OR REPLACE TEMP TABLE equity AS
WITH first_mark AS (
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
)
SELECT m.symbol, m.ts, m.time, m.mid,
    coalesce(a.position, 0) + coalesce(r.qty, 0) AS position,
    (coalesce(a.position, 0) + coalesce(r.qty, 0)) * m.mid - coalesce(r.cash_out, 0) AS equity
FROM (SELECT * FROM marks
      WHERE ts >= {since_ms} AND ts < {until_ms} AND symbol LIKE '{symbol}') m
ASOF LEFT JOIN running r ON m.symbol = r.symbol AND m.ts >= r.ts
LEFT JOIN anchor a ON a.symbol = m.symbol;
