/* leader--1.0.sql: leader election with fencing terms, liveness locks and events */

\echo Use "CREATE EXTENSION leader" to load this file. \quit

-- The durable record of leases: one row per group, kept when the group falls
-- vacant so that its term never goes backwards.  Changed only by the
-- functions below (which write it directly); readable by everyone.
CREATE TABLE @extschema@.leader_lease (
    group_name    text COLLATE "C" PRIMARY KEY
                  CHECK (pg_catalog.octet_length(group_name) BETWEEN 1 AND 200),
    term          bigint NOT NULL CHECK (term >= 0),
    holder        text CHECK (pg_catalog.octet_length(holder) BETWEEN 1 AND 200),
    holder_kind   text CHECK (holder_kind IN ('session', 'named')),
    holder_role   pg_catalog.regrole,
    pid           integer,
    backend_start timestamptz,
    acquired_at   timestamptz,
    renewed_at    timestamptz,
    expires_at    timestamptz,
    CHECK ((holder IS NULL) = (holder_kind IS NULL)),
    CHECK ((holder_kind = 'session') = (pid IS NOT NULL AND backend_start IS NOT NULL))
);

-- The leases that are held, for the background worker: it looks only at
-- these, never at vacant groups.  Renewals change no indexed column, so they
-- stay HOT updates.
CREATE INDEX leader_lease_held_idx ON @extschema@.leader_lease (group_name)
    WHERE holder IS NOT NULL;

COMMENT ON TABLE @extschema@.leader_lease IS
    'leader: one row per election group; holder NULL means vacant. Changed only through the leader_* functions.';

REVOKE ALL ON TABLE @extschema@.leader_lease FROM PUBLIC;
GRANT SELECT ON TABLE @extschema@.leader_lease TO PUBLIC;

-- pg_dump keeps the rows, and with them every group's last term.
SELECT pg_catalog.pg_extension_config_dump('@extschema@.leader_lease', '');

CREATE FUNCTION @extschema@.leader_try_acquire(
    group_name text, ttl interval DEFAULT NULL, holder text DEFAULT NULL)
RETURNS boolean
LANGUAGE C VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'leader_try_acquire';

COMMENT ON FUNCTION @extschema@.leader_try_acquire(text, interval, text) IS
    'Lead the group, or renew the lease if the caller leads it; never waits';

CREATE FUNCTION @extschema@.leader_acquire(
    group_name text, timeout interval DEFAULT NULL, ttl interval DEFAULT NULL,
    holder text DEFAULT NULL)
RETURNS boolean
LANGUAGE C VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'leader_acquire';

COMMENT ON FUNCTION @extschema@.leader_acquire(text, interval, interval, text) IS
    'Wait until the caller leads the group (true) or the timeout passes (false)';

CREATE FUNCTION @extschema@.leader_release(group_name text, holder text DEFAULT NULL)
RETURNS boolean
LANGUAGE C VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'leader_release';

COMMENT ON FUNCTION @extschema@.leader_release(text, text) IS
    'End the caller''s leadership of the group; false if it did not lead';

CREATE FUNCTION @extschema@.leader_is_leader(group_name text, holder text DEFAULT NULL)
RETURNS boolean
LANGUAGE C VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'leader_is_leader';

COMMENT ON FUNCTION @extschema@.leader_is_leader(text, text) IS
    'Whether the caller leads the group with an unexpired lease right now';

CREATE FUNCTION @extschema@.leader_current(group_name text)
RETURNS text
LANGUAGE C VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'leader_current';

COMMENT ON FUNCTION @extschema@.leader_current(text) IS
    'The holder of the group''s unexpired lease, or NULL';

CREATE FUNCTION @extschema@.leader_term(group_name text, holder text DEFAULT NULL)
RETURNS bigint
LANGUAGE C VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'leader_term';

COMMENT ON FUNCTION @extschema@.leader_term(text, text) IS
    'The caller''s fencing term if it leads the group, else NULL';

CREATE FUNCTION @extschema@.leader_fence(group_name text, term bigint)
RETURNS void
LANGUAGE C VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'leader_fence';

COMMENT ON FUNCTION @extschema@.leader_fence(text, bigint) IS
    'Error unless term is the group''s current unexpired term; then no handover until this transaction ends';

CREATE FUNCTION @extschema@.leader_force_release(group_name text)
RETURNS boolean
LANGUAGE C VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'leader_force_release';

COMMENT ON FUNCTION @extschema@.leader_force_release(text) IS
    'End whoever leads the group (administrators only, unless granted)';

REVOKE ALL ON FUNCTION @extschema@.leader_force_release(text) FROM PUBLIC;

CREATE FUNCTION @extschema@.leader_session_alive(
    group_name text, term bigint, pid integer, backend_start timestamptz)
RETURNS boolean
LANGUAGE C VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'leader_session_alive';

COMMENT ON FUNCTION @extschema@.leader_session_alive(text, bigint, integer, timestamptz) IS
    'Whether the session of a session-bound lease still lives (NULL for named holders); used by leader_status';

CREATE VIEW @extschema@.leader_status AS
SELECT l.group_name,
       l.holder,
       l.holder_kind AS kind,
       l.holder_role AS role,
       l.pid,
       l.term,
       l.acquired_at,
       l.renewed_at,
       l.expires_at,
       CASE
           WHEN l.holder IS NULL THEN 'vacant'
           WHEN l.expires_at <= pg_catalog.clock_timestamp() THEN 'expired'
           WHEN a.session_alive IS FALSE THEN 'vacant'
           ELSE 'held'
       END AS state,
       a.session_alive
FROM @extschema@.leader_lease AS l
CROSS JOIN LATERAL (
    SELECT @extschema@.leader_session_alive(l.group_name, l.term, l.pid, l.backend_start)
           AS session_alive
) AS a;

COMMENT ON VIEW @extschema@.leader_status IS
    'leader: one row per group with its holder, term, expiry and state (held, expired, vacant)';

GRANT SELECT ON @extschema@.leader_status TO PUBLIC;
