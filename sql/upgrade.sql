-- The upgrade path: a database at version 1.0 with leases held (named and
-- session-bound) is updated with ALTER EXTENSION leader UPDATE; terms and
-- holders are kept, the functions work, and a new term is above the old.
CREATE DATABASE leader_upgrade;
\c leader_upgrade
CREATE EXTENSION leader VERSION '1.0';
CREATE ROLE leader_upgrade_app;
CREATE ROLE leader_upgrade_gone;

-- The library serves 1.1 only: on a database still at 1.0 every call fails
-- with the remedy.
SELECT leader_try_acquire('named', '1 hour', 'svc-a');

-- Leases held at version 1.0, as its library stored them: a named lease, a
-- session-bound one (of a session that loaded the 1.0 library, so it has
-- ended: sessions, or with shared_preload_libraries the server, are
-- restarted to load the 1.1 library), a vacant group, and a named lease of
-- a role dropped before the update (regrole keeps its number).
INSERT INTO leader_lease VALUES
    ('named', 7, 'svc-a', 'named', 'leader_upgrade_app', NULL, NULL,
     now(), now(), now() + interval '1 hour'),
    ('session', 5, 'web (pid 999999)', 'session', 'leader_upgrade_app', 999999,
     '2026-01-01 00:00:00+00', now(), now(), now() + interval '1 hour'),
    ('vacant', 4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
    ('orphan', 2, 'svc-x', 'named', 'leader_upgrade_gone', NULL, NULL,
     now(), now(), now() + interval '1 hour');
DROP ROLE leader_upgrade_gone;
CREATE TEMP TABLE before AS SELECT group_name, term, holder FROM leader_lease;
ALTER EXTENSION leader UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'leader';

-- Every row kept: terms and holders, roles now stored by name; the dropped
-- role's lease has a name no role has.
SELECT l.group_name, l.term, l.term = b.term AS term_kept, l.holder IS NOT DISTINCT FROM b.holder AS holder_kept,
       CASE WHEN l.holder_role LIKE 'unknown (OID=%)' THEN 'a dropped role'
            ELSE l.holder_role::text END AS holder_role,
       l.creator_role
FROM leader_lease l JOIN before b USING (group_name)
ORDER BY 1;
SELECT pg_typeof(holder_role) AS holder_role_type, pg_typeof(role) AS status_role_type
FROM leader_lease, leader_status LIMIT 1;

-- The named lease: its role still renews it, with the same term.
SET ROLE leader_upgrade_app;
SELECT leader_try_acquire('named', '1 hour', 'svc-a') AS renewed,
       leader_term('named', 'svc-a') AS term;
-- The session-bound lease of the ended session is vacant; its group's next
-- term is above the old.
SELECT state, session_alive, term FROM leader_status WHERE group_name = 'session';
SELECT leader_try_acquire('session') AS acquired, leader_term('session') AS term;
-- The vacant group's next term is above its old one.
SELECT leader_try_acquire('vacant', '1 hour', 'svc-b') AS acquired,
       leader_term('vacant', 'svc-b') AS term;
-- Nobody can renew or release the dropped role's lease: it stays held until
-- it expires or is force-released.
SELECT leader_release('orphan', 'svc-x') AS released,
       leader_current('orphan') AS current;
RESET ROLE;
SELECT leader_force_release('orphan') AS forced;
SET ROLE leader_upgrade_app;
SELECT leader_try_acquire('orphan', '1 hour', 'svc-x') AS acquired,
       leader_term('orphan', 'svc-x') AS term;
-- After a release the next term is above the last.
SELECT leader_release('named', 'svc-a') AS released;
SELECT leader_try_acquire('named', '1 hour', 'svc-c') AS acquired,
       leader_term('named', 'svc-c') AS term;
-- A group created since the update records its creator.
SELECT leader_try_acquire('fresh', '1 hour', 'svc-d') AS acquired;
SELECT group_name, holder_role, creator_role FROM leader_lease ORDER BY 1;
SELECT group_name, CASE kind WHEN 'named' THEN holder END AS named_holder, role, term, state
FROM leader_status ORDER BY 1;
RESET ROLE;

-- Roles are stored by name: a renamed role no longer owns its named leases
-- (they expire, or are force-released); renamed back, it owns them again.
ALTER ROLE leader_upgrade_app RENAME TO leader_upgrade_renamed;
SET ROLE leader_upgrade_renamed;
SELECT leader_try_acquire('fresh', '1 hour', 'svc-d') AS renewed,
       leader_release('fresh', 'svc-d') AS released;
RESET ROLE;
ALTER ROLE leader_upgrade_renamed RENAME TO leader_upgrade_app;
SET ROLE leader_upgrade_app;
SELECT leader_try_acquire('fresh', '1 hour', 'svc-d') AS renewed;
RESET ROLE;

-- The upgraded database has the objects of a fresh 1.1 install (compared
-- with contrib_regression's below).  The row types of the tables and views,
-- and their array types, are left out: from PostgreSQL 17 on they are
-- members of their own.
\set shape 'SELECT string_agg(attname || \' \' || format_type(atttypid, atttypmod), \', \' ORDER BY attnum) AS columns FROM pg_attribute WHERE attrelid = \'leader_lease\'::regclass AND attnum > 0 AND NOT attisdropped'
\set members 'SELECT pg_describe_object(classid, objid, 0) AS member FROM pg_depend WHERE refclassid = \'pg_extension\'::regclass AND deptype = \'e\' AND refobjid = (SELECT oid FROM pg_extension WHERE extname = \'leader\') AND NOT EXISTS (SELECT FROM pg_class c JOIN pg_type t ON t.oid = c.reltype WHERE classid = \'pg_type\'::regclass AND objid IN (t.oid, t.typarray)) ORDER BY 1'
\set indexes 'SELECT indexrelid::regclass AS index, pg_get_indexdef(indexrelid) ~ \'@extschema@\' AS unexpanded FROM pg_index WHERE indrelid = \'leader_lease\'::regclass ORDER BY 1'
:shape;
:members;
:indexes;
SELECT extconfig::regclass[] AS dumped_tables FROM pg_extension WHERE extname = 'leader';
\d leader_term_floor

\c contrib_regression
:shape;
:members;
:indexes;
SELECT extconfig::regclass[] AS dumped_tables FROM pg_extension WHERE extname = 'leader';
DROP DATABASE leader_upgrade;
DROP ROLE leader_upgrade_app;
