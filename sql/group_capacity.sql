-- Group caps: leader.max_groups_per_role limits the groups one role has
-- created that still exist, so one role's groups never stop another role
-- from creating one; at a cap, vacant groups are reclaimed first (the
-- role's own, or for leader.max_groups any), and a group created anew
-- starts above every reclaimed term.  Run in a database whose owner is not a
-- superuser, with two unprivileged roles.
CREATE ROLE leader_cap_owner;
CREATE ROLE leader_cap_a;
CREATE ROLE leader_cap_b;
CREATE DATABASE leader_capacity OWNER leader_cap_owner;
\c leader_capacity
CREATE EXTENSION leader;
SET leader.max_groups_per_role = 3;
\set groups 'SELECT group_name, creator_role, term, holder IS NOT NULL AS held FROM leader_lease ORDER BY 1'

-- Role a fills its cap; its next group fails, while role b still creates.
SET ROLE leader_cap_a;
SELECT leader_try_acquire('a1', '1 hour', 'a'), leader_try_acquire('a2', '1 hour', 'a'),
       leader_try_acquire('a3', '1 hour', 'a');
SELECT leader_try_acquire('a4', '1 hour', 'a');
SET ROLE leader_cap_b;
SELECT leader_try_acquire('b1', '1 hour', 'b') AS b_creates;
-- Leading a group another role created does not count against the cap.
SELECT leader_release('b1', 'b');
SET ROLE leader_cap_a;
SELECT leader_try_acquire('b1', '1 hour', 'a') AS a_leads_b1;
SELECT leader_release('b1', 'a');
:groups;

-- Held groups are never reclaimed, nor another role's vacant group (b1).
SELECT leader_try_acquire('a4', '1 hour', 'a');
:groups;

-- a1 falls vacant after a few terms; at its cap role a reclaims it, and its
-- term goes into the term floor.
SELECT leader_release('a1', 'a'), leader_try_acquire('a1', '1 hour', 'a'),
       leader_release('a1', 'a'), leader_try_acquire('a1', '1 hour', 'a'),
       leader_release('a1', 'a');
SELECT leader_try_acquire('a4', '1 hour', 'a') AS a4_created;
:groups;
SELECT term FROM leader_term_floor;

-- A rollback of a reclaiming creation brings the reclaimed row back (a2,
-- with its term 4), and the floor as it was (3).
SELECT leader_release('a2', 'a'), leader_try_acquire('a2', '1 hour', 'a'),
       leader_release('a2', 'a'), leader_try_acquire('a2', '1 hour', 'a'),
       leader_release('a2', 'a'), leader_try_acquire('a2', '1 hour', 'a'),
       leader_release('a2', 'a');
BEGIN;
SELECT leader_try_acquire('a5', '1 hour', 'a') AS a5_created;
SELECT count(*) AS a2_rows FROM leader_lease WHERE group_name = 'a2';
SELECT term FROM leader_term_floor;
ROLLBACK;
:groups;
SELECT term FROM leader_term_floor;

-- A reclaimed group created again starts above its old last term (3); the
-- reclaim that makes room for it takes a2 and a4 (term 4 each).
SELECT leader_release('a4', 'a');
SELECT leader_try_acquire('a1', '1 hour', 'a') AS a1_created_again,
       leader_term('a1', 'a') AS a1_term;
:groups;

-- The database-wide cap reclaims any vacant group (b1, created by b; the
-- floor is above its term already).
RESET ROLE;
SET leader.max_groups = 3;
SET ROLE leader_cap_b;
SELECT leader_try_acquire('b2', '1 hour', 'b') AS b2_created;
:groups;
SELECT term FROM leader_term_floor;
-- With nothing vacant, the database-wide cap holds.
SELECT leader_try_acquire('b3', '1 hour', 'b');
RESET ROLE;
RESET leader.max_groups;

-- A cap far below a role's count (it was lowered): each creation reclaims
-- up to 64 of the role's vacant groups; after a full batch it goes ahead
-- (it does not add to the count), so the count comes back down to the cap.
-- Role b has b2 (held) and 70 vacant groups: c1 leaves 71 - 64 + 1 = 8
-- groups, c2 8 - 6 + 1 = 3, and c3 finds only held groups.
SET leader.max_groups_per_role = 1000;
SET ROLE leader_cap_b;
SELECT count(*) FILTER (WHERE leader_try_acquire('many ' || i, '1 hour', 'b')
                          AND leader_release('many ' || i, 'b')) AS vacant_groups
FROM generate_series(1, 70) AS i;
RESET ROLE;
SET leader.max_groups_per_role = 3;
SET ROLE leader_cap_b;
\set b_groups 'SELECT count(*) AS b_groups, count(*) FILTER (WHERE holder IS NULL) AS vacant FROM leader_lease WHERE creator_role = \'leader_cap_b\''
SELECT leader_try_acquire('c1', '1 hour', 'b') AS c1_created;
:b_groups;
SELECT leader_try_acquire('c2', '1 hour', 'b') AS c2_created;
:b_groups;
SELECT leader_try_acquire('c3', '1 hour', 'b');
:b_groups;
RESET ROLE;

-- Superusers are exempt from the per-role cap (not from leader.max_groups).
SELECT leader_try_acquire('s1', '1 hour', 's'), leader_try_acquire('s2', '1 hour', 's'),
       leader_try_acquire('s3', '1 hour', 's'), leader_try_acquire('s4', '1 hour', 's');

-- Neither the roles nor the database owner may raise the caps or write the
-- term floor.
SET ROLE leader_cap_owner;
SET leader.max_groups_per_role = 100000;
SET leader.max_groups = 100000;
ALTER DATABASE leader_capacity SET leader.max_groups_per_role = 100000;
INSERT INTO leader_term_floor VALUES (0);
UPDATE leader_term_floor SET term = 0;
DELETE FROM leader_term_floor;
SET ROLE leader_cap_a;
DELETE FROM leader_term_floor;
SELECT count(*) AS floor_rows FROM leader_term_floor;
RESET ROLE;

\c contrib_regression
DROP DATABASE leader_capacity;
DROP ROLE leader_cap_owner;
DROP ROLE leader_cap_a;
DROP ROLE leader_cap_b;
