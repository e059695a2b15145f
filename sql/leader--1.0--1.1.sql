/* leader--1.0--1.1.sql: roles stored by name, group creators, the term floor */

\echo Use "ALTER EXTENSION leader UPDATE TO '1.1'" to load this file. \quit

-- leader_status shows holder_role, whose type changes: it is created again
-- below, as it was.
DROP VIEW @extschema@.leader_status;

-- Roles are stored by name, not as regrole, so that a dump restores where a
-- role does not exist (a regrole is dumped by name, and a name that matches
-- no role fails the whole COPY of the table).  A role dropped before the
-- update becomes a name no role has, "unknown (OID=n)": its lease is one
-- nobody can renew or release, which expires or is force-released.
-- creator_role: the role that created the group's row, which
-- leader.max_groups_per_role counts; unknown (NULL) for groups created
-- before 1.1, which count against no role.
ALTER TABLE @extschema@.leader_lease
    ALTER COLUMN holder_role TYPE pg_catalog.name
        USING pg_catalog.pg_get_userbyid(holder_role::pg_catalog.oid),
    ADD COLUMN creator_role pg_catalog.name;

-- Counting a role's groups reads only that role's rows.  Renewals change no
-- indexed column, so they stay HOT updates.
CREATE INDEX leader_lease_creator_role_idx ON @extschema@.leader_lease (creator_role);

-- The database's term floor: at least the last term of every group whose
-- vacant row was reclaimed, so that a group created anew starts above it.
-- Empty until the first reclaim (a row created here would clash with the
-- dumped one on restore); written only by the leader_* functions.
CREATE TABLE @extschema@.leader_term_floor (
    term bigint NOT NULL CHECK (term >= 0)
);

COMMENT ON TABLE @extschema@.leader_term_floor IS
    'leader: no group created anew takes a term at or below the highest term here. Changed only through the leader_* functions.';

REVOKE ALL ON TABLE @extschema@.leader_term_floor FROM PUBLIC;
GRANT SELECT ON TABLE @extschema@.leader_term_floor TO PUBLIC;

SELECT pg_catalog.pg_extension_config_dump('@extschema@.leader_term_floor', '');

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
