-- Events on leader_changed, read by a second, listening session (dblink):
-- one JSON object per change, at commit, none for renewals or rollbacks,
-- exactly one "acquired" and one ending event per term, and names that
-- round-trip through JSON.
CREATE EXTENSION dblink;
SELECT dblink_connect('listener', format('dbname=%s application_name=listener', current_database()));
SELECT dblink_exec('listener', 'LISTEN leader_changed');

-- The events received so far, oldest first.  Delivery to the listener is
-- asynchronous, so this asks the listener until at least "expected" events
-- have arrived (or 10 s pass); when none are expected, it still listens for
-- 100 ms, so that an event sent by mistake would show.
CREATE FUNCTION pg_temp.events(expected int) RETURNS SETOF json
LANGUAGE plpgsql AS $$
DECLARE
    got json[] := '{}';
    started timestamptz := clock_timestamp();
BEGIN
    LOOP
        PERFORM * FROM dblink('listener', 'SELECT 1') AS t(one int);
        got := got || ARRAY(SELECT extra::json FROM dblink_get_notify('listener'));
        EXIT WHEN expected > 0 AND cardinality(got) >= expected;
        EXIT WHEN expected = 0 AND clock_timestamp() > started + interval '100 ms';
        EXIT WHEN clock_timestamp() > started + interval '10 s';
        PERFORM pg_sleep(0.01);
    END LOOP;
    RETURN QUERY SELECT unnest(got);
END
$$;
CREATE TEMP TABLE seen (n serial, payload json);
CREATE FUNCTION pg_temp.collect(expected int) RETURNS TABLE (event text, grp text, kind text, holder text,
                                                             pid_is_mine boolean, term bigint)
LANGUAGE sql AS $$
    INSERT INTO seen (payload) SELECT * FROM pg_temp.events(expected);
    SELECT payload->>'event', payload->>'group', payload->>'kind',
           CASE WHEN payload->>'kind' = 'named' THEN payload->>'holder' END,
           (payload->>'pid')::int = pg_backend_pid(),
           (payload->>'term')::bigint
    FROM seen WHERE n > coalesce((SELECT max(n) FROM seen WHERE payload IS NULL), 0)
    ORDER BY n;
$$;
-- (a NULL payload row marks what has been shown already)
CREATE FUNCTION pg_temp.shown() RETURNS void LANGUAGE sql AS $$ INSERT INTO seen (payload) VALUES (NULL) $$;

SET application_name = 'web-2';

-- acquired, with the holder's display name, pid, term and expiry.
SELECT leader_try_acquire('ev-cron') AS acquired;
SELECT * FROM pg_temp.collect(1);
SELECT s.payload->>'holder' = format('web-2 (pid %s)', pg_backend_pid()) AS holder_is_display_name,
       (s.payload->>'expires_at')::timestamptz = l.expires_at AS expires_at_matches,
       s.payload->>'expires_at' ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$' AS iso_utc
FROM seen s, leader_lease l
WHERE s.payload->>'event' = 'acquired' AND l.group_name = 'ev-cron';
SELECT pg_temp.shown();

-- Renewals send nothing; release sends "released" with the ended term.
SELECT leader_try_acquire('ev-cron') AS renewed, leader_try_acquire('ev-cron', '1 minute') AS renewed_again;
SELECT leader_release('ev-cron') AS released;
SELECT * FROM pg_temp.collect(1);
SELECT pg_temp.shown();

-- A rolled-back acquisition sends nothing; so does a rolled-back savepoint.
BEGIN;
SELECT leader_try_acquire('ev-cron') AS acquired;
ROLLBACK;
BEGIN;
SAVEPOINT s;
SELECT leader_try_acquire('ev-cron') AS acquired;
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT * FROM pg_temp.collect(0);

-- Events are sent at commit, in commit order.
BEGIN;
SELECT leader_try_acquire('ev-cron') AS acquired;
SELECT * FROM pg_temp.collect(0);
COMMIT;
SELECT * FROM pg_temp.collect(1);
SELECT pg_temp.shown();

-- A lease that ended by dropping the session's advisory locks is recorded as
-- "vacated" by the next change, which then sends its own "acquired".
SELECT pg_advisory_unlock_all();
SELECT leader_try_acquire('ev-cron', NULL, 'pod-1') AS acquired;
SELECT * FROM pg_temp.collect(2);
SELECT pg_temp.shown();

-- An expired lease is recorded as "expired", then forced release.
SELECT leader_try_acquire('ev-short', '10 milliseconds', 'pod-1') AS acquired;
SELECT pg_sleep(0.05);
SELECT leader_try_acquire('ev-short', NULL, 'pod-2') AS acquired;
SELECT leader_force_release('ev-short') AS forced;
SELECT * FROM pg_temp.collect(4);
SELECT pg_temp.shown();

-- Names with quotes, backslashes, newlines, control and non-ASCII characters
-- round-trip through the JSON payload.
CREATE TEMP TABLE odd (name text);
INSERT INTO odd VALUES (E'quote " backslash \\ newline \n tab \t bell \x07 ünïcödé 名前 🙂');
SELECT leader_try_acquire(name, '1 hour', name) AS acquired FROM odd;
SELECT leader_release(name, name) AS released FROM odd;
SELECT s.payload->>'event' AS event,
       s.payload->>'group' = o.name AS group_round_trips,
       s.payload->>'holder' = o.name AS holder_round_trips
FROM pg_temp.events(2) s(payload), odd o ORDER BY 1;

-- The longest names, made of characters that escape to six bytes each, stay
-- far below NOTIFY's 8000-byte limit and still round-trip.
TRUNCATE odd;
INSERT INTO odd VALUES (repeat(E'\x01', 200)), (repeat('名', 66) || 'xx');
SELECT octet_length(name) AS bytes FROM odd ORDER BY 1;
SELECT leader_try_acquire(name, '1 hour', name) AS acquired FROM odd;
SELECT octet_length(s.payload::text) < 8000 AS under_limit,
       s.payload->>'group' = o.name AS group_round_trips,
       s.payload->>'holder' = o.name AS holder_round_trips
FROM pg_temp.events(2) s(payload) JOIN odd o ON s.payload->>'group' = o.name;

-- Over the whole test: every term of every group has exactly one "acquired"
-- and at most one ending event, and none of them is missing its "acquired".
INSERT INTO seen (payload) SELECT * FROM pg_temp.events(0);
SELECT payload->>'group' AS grp, (payload->>'term')::bigint AS term,
       count(*) FILTER (WHERE payload->>'event' = 'acquired') AS acquired,
       count(*) FILTER (WHERE payload->>'event' <> 'acquired') AS ended
FROM seen WHERE payload IS NOT NULL AND payload->>'group' IN ('ev-cron', 'ev-short')
GROUP BY 1, 2 ORDER BY 1, 2;

SELECT dblink_disconnect('listener');
