-- Did it make money, and why. Parameters: {bucket} ('hour' or 'day'), {since_ms}, {until_ms},
-- {symbol} (a symbol, or '%' for all).
--
-- Periods: every UTC hour or day (of the symbol, within --since/--until) that has a fill, a
-- funding payment or a mark. A period without fills has fills = 0 and zero sums (volume,
-- realized, fees, spread capture) but NULL ratios (maker_share and every *_bps: no volume).
--
-- Realized PnL is the venue's, per fill (average cost: closing quantity × (price − average
-- entry)); fees are the commissions paid (negative: rebates); net = realized − fees + funding.
-- Spread capture: how far from the mid each fill was, in our favour (bought below / sold
-- above), at the mark just before the fill. Markouts: the mid h seconds after the fill against
-- the fill price, in our favour; a negative markout is adverse selection. Both in quote asset
-- and in bps of notional.
--
-- Mark to market. Each period is valued at its start and its end (the period's edges, cut to
-- --since/--until):
--   position  = the position the journal starts with + Σ side × qty of every fill before the
--               edge. The starting position is the first mark's position less the fills at or
--               before that mark (0 for a journal that starts flat). Positions come from the
--               fills, not from each mark's `position`, so that position and cash flows agree
--               by construction (in `run` a mark can be written before a fill it already
--               includes by exchange time has arrived).
--   mid       = the mid of the last mark before the edge (the last known mid, possibly from an
--               earlier period); at the start, when no mark precedes it, the period's first
--               mark (the journal's first valuation).
--   unrealized at an edge = position × (mid − average entry), the venue's definition at the
--               mid. Its change needs no average entry: each fill changes position × entry by
--               side × price × qty + its realized PnL, so
--   unrealized_change = position_end × mid_end − position_start × mid_start
--                       − Σ side × price × qty − Σ realized   (the period's fills)
--   equity_change     = net_pnl + unrealized_change
--                     = Δ(position × mid) − Σ side × price × qty − fees + funding.
-- A position term is 0 when the position is 0 (no mid needed), NULL when a non-zero position
-- has no mid yet; then unrealized_change and equity_change are NULL. Consecutive periods share
-- their edge valuation, so equity_change adds up over the rows to the range's equity change.
-- The marks' netPnl is not used: it restarts at 0 with each run, leaves out funding in `run`
-- and values the position at the mark price in a backtest with a mark feed.

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
        sum(sign * (mid30 - price) * qty) AS out30, sum(sign * (mid60 - price) * qty) AS out60,
        sum(sign * qty) AS qty_change, sum(sign * notional) AS cash_out
    FROM later
    GROUP BY ALL
),
fund AS (
    SELECT symbol, date_trunc('{bucket}', time) AS bucket_start, sum(amount) AS funding
    FROM funding
    WHERE ts >= {since_ms} AND ts < {until_ms} AND symbol LIKE '{symbol}'
    GROUP BY ALL
),
mk AS (
    SELECT symbol, date_trunc('{bucket}', time) AS bucket_start, arg_min(mid, ts) AS mid_first
    FROM marks
    WHERE ts >= {since_ms} AND ts < {until_ms} AND symbol LIKE '{symbol}'
    GROUP BY ALL
),
periods AS (
    SELECT symbol, bucket_start FROM per
    UNION SELECT symbol, bucket_start FROM fund
    UNION SELECT symbol, bucket_start FROM mk
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
before AS (
    SELECT symbol, sum(sign * qty) AS qty_change
    FROM fills WHERE ts < {since_ms} AND symbol LIKE '{symbol}'
    GROUP BY symbol
),
opening AS (
    -- the position at --since: the starting position plus every fill before --since
    SELECT s.symbol, coalesce(a.position, 0) + coalesce(b.qty_change, 0) AS position
    FROM (SELECT DISTINCT symbol FROM periods) s
    LEFT JOIN anchor a ON a.symbol = s.symbol
    LEFT JOIN before b ON b.symbol = s.symbol
),
edges AS (
    SELECT p.symbol, p.bucket_start,
        greatest(epoch_ms(p.bucket_start), {since_ms}) AS start_ms,
        least(epoch_ms(p.bucket_start + INTERVAL 1 {bucket}), {until_ms}) AS end_ms,
        o.position + sum(coalesce(c.qty_change, 0))
            OVER (PARTITION BY p.symbol ORDER BY p.bucket_start) AS position_end,
        coalesce(c.qty_change, 0) AS qty_change
    FROM periods p
    JOIN opening o ON o.symbol = p.symbol
    LEFT JOIN per c ON c.symbol = p.symbol AND c.bucket_start = p.bucket_start
),
valued AS (
    SELECT e.symbol, e.bucket_start, e.position_end, me.mid AS mid_end,
        CASE WHEN e.position_end - e.qty_change = 0 THEN 0
             ELSE (e.position_end - e.qty_change) * coalesce(ms.mid, k.mid_first) END
            AS value_start,
        CASE WHEN e.position_end = 0 THEN 0 ELSE e.position_end * me.mid END AS value_end
    FROM edges e
    ASOF LEFT JOIN marks ms ON e.symbol = ms.symbol AND e.start_ms > ms.ts
    ASOF LEFT JOIN marks me ON e.symbol = me.symbol AND e.end_ms > me.ts
    LEFT JOIN mk k ON k.symbol = e.symbol AND k.bucket_start = e.bucket_start
),
joined AS (
    SELECT v.*, p.fills, p.maker_share, p.volume, p.capture, p.out1, p.out5, p.out30,
        p.out60,
        coalesce(p.realized, 0) AS realized, coalesce(p.fees, 0) AS fees,
        coalesce(f.funding, 0) AS funding,
        v.value_end - v.value_start - coalesce(p.cash_out, 0) - coalesce(p.realized, 0)
            AS unrealized_change
    FROM valued v
    LEFT JOIN per p ON p.symbol = v.symbol AND p.bucket_start = v.bucket_start
    LEFT JOIN fund f ON f.symbol = v.symbol AND f.bucket_start = v.bucket_start
)
SELECT
    'pnl' AS type,
    symbol,
    epoch_ms(bucket_start) AS ts,
    strftime(bucket_start, '%Y-%m-%d %H:%M') AS period,
    coalesce(fills, 0) AS fills,
    maker_share,
    round(coalesce(volume, 0), 2) AS volume,
    round(realized, 8) AS realized_pnl,
    round(fees, 8) AS fees,
    round(funding, 8) AS funding,
    round(realized - fees + funding, 8) AS net_pnl,
    round(CASE WHEN fills IS NULL THEN 0 ELSE capture END, 8) AS spread_capture,
    round(10000 * capture / volume, 3) AS spread_capture_bps,
    round(10000 * out1 / volume, 3) AS markout_1s_bps,
    round(10000 * out5 / volume, 3) AS markout_5s_bps,
    round(10000 * out30 / volume, 3) AS markout_30s_bps,
    round(10000 * out60 / volume, 3) AS markout_60s_bps,
    round(10000 * fees / volume, 3) AS fee_bps,
    position_end,
    mid_end,
    round(unrealized_change, 8) AS unrealized_change,
    round(realized - fees + funding + unrealized_change, 8) AS equity_change
FROM joined
ORDER BY symbol, ts;
