-- Bad input: every bad call raises an error with a SQLSTATE that names the
-- parameter and the problem, and changes nothing.
CREATE FUNCTION pg_temp.try(call text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE 'SELECT ' || call;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

CREATE TEMP TABLE snapshot AS SELECT * FROM leader_lease;

-- group_name: never NULL, 1 to 200 bytes, in every function.
SELECT call, pg_temp.try(call) AS result FROM (VALUES
    ($$leader_try_acquire(NULL)$$),
    ($$leader_try_acquire('')$$),
    ($$leader_try_acquire(repeat('g', 201))$$),
    ($$leader_try_acquire(repeat('é', 101))$$),
    ($$leader_acquire(NULL)$$),
    ($$leader_acquire('')$$),
    ($$leader_release(NULL)$$),
    ($$leader_release(repeat('g', 201))$$),
    ($$leader_is_leader(NULL)$$),
    ($$leader_current(NULL)$$),
    ($$leader_current('')$$),
    ($$leader_term(NULL)$$),
    ($$leader_fence(NULL, 1)$$),
    ($$leader_fence('', 1)$$),
    ($$leader_force_release(NULL)$$),
    ($$leader_force_release(repeat('g', 201))$$)) AS calls(call);

-- holder: NULL means this session; empty or over 200 bytes is an error.
SELECT call, pg_temp.try(call) AS result FROM (VALUES
    ($$leader_try_acquire('g', NULL, '')$$),
    ($$leader_try_acquire('g', NULL, repeat('h', 201))$$),
    ($$leader_acquire('g', '1s', '1s', '')$$),
    ($$leader_release('g', '')$$),
    ($$leader_is_leader('g', '')$$),
    ($$leader_term('g', repeat('h', 201))$$)) AS calls(call);

-- ttl: positive, at most leader.max_ttl (1 day unless changed).
SELECT call, pg_temp.try(call) AS result FROM (VALUES
    ($$leader_try_acquire('g', '0')$$),
    ($$leader_try_acquire('g', '-1 second')$$),
    ($$leader_try_acquire('g', '1 second -1 day')$$),
    ($$leader_try_acquire('g', '-178000000 years')$$),
    ($$leader_try_acquire('g', '1 day 1 second')$$),
    ($$leader_try_acquire('g', '1 month')$$),
    ($$leader_try_acquire('g', '178000000 years')$$),
    ($$leader_acquire('g', '1 second', '0')$$)) AS calls(call);
SET leader.max_ttl = '1min';
SELECT call, pg_temp.try(call) AS result FROM (VALUES
    ($$leader_try_acquire('g', '2 minutes')$$)) AS calls(call);
SET leader.default_ttl = '2min';
SELECT call, pg_temp.try(call) AS result FROM (VALUES
    ($$leader_try_acquire('g')$$)) AS calls(call);
RESET leader.default_ttl;
RESET leader.max_ttl;

-- timeout: positive, at most 1 day; NULL waits without limit.
SELECT call, pg_temp.try(call) AS result FROM (VALUES
    ($$leader_acquire('g', '0')$$),
    ($$leader_acquire('g', '-5 seconds')$$),
    ($$leader_acquire('g', '2 days')$$)) AS calls(call);

-- term: never NULL, and it must be the group's current one.
SELECT call, pg_temp.try(call) AS result FROM (VALUES
    ($$leader_fence('g', NULL)$$),
    ($$leader_fence('never led', 1)$$)) AS calls(call);

-- Settings refuse values out of range.  (The range the message ends with is
-- shown from pg_settings: from PostgreSQL 17 on, the message prints its units.)
SELECT call, regexp_replace(pg_temp.try(call), ' \(.*\)$', '') AS result FROM (VALUES
    ($$set_config('leader.default_ttl', '0', false)$$),
    ($$set_config('leader.max_groups', '-1', false)$$)) AS calls(call);
SELECT name, unit, min_val, max_val FROM pg_settings
WHERE name IN ('leader.default_ttl', 'leader.max_groups') ORDER BY name;
SET leader.poll_interval = '1 hour';

-- Nothing above changed the table.
SELECT count(*) AS changed_rows FROM (
    (SELECT * FROM leader_lease EXCEPT SELECT * FROM snapshot)
    UNION ALL
    (SELECT * FROM snapshot EXCEPT SELECT * FROM leader_lease)) d;
