-- The SQL surface, one session at a time: acquire, renew, release, named
-- holders, expiry, liveness, transactions, the view and the group cap.
SET application_name = 'regress';

-- A session-bound leadership.
SELECT leader_try_acquire('alpha') AS acquired;
SELECT leader_is_leader('alpha') AS is_leader,
       leader_term('alpha') AS term,
       leader_current('alpha') = format('regress (pid %s)', pg_backend_pid()) AS current_is_me;
SELECT group_name, kind, term, state, session_alive, pid = pg_backend_pid() AS my_pid,
       holder = format('regress (pid %s)', pg_backend_pid()) AS holder_is_display_name,
       expires_at - renewed_at AS ttl
FROM leader_status WHERE group_name = 'alpha';

-- The session holds one liveness lock for it, in the extension's lock space
-- (objsubid 19525, never 1 or 2 like SQL advisory locks).
SELECT locktype, mode, granted, objsubid, pid = pg_backend_pid() AS mine
FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 19525;

-- Renewal keeps the term, moves expires_at, and can change the ttl.
CREATE TEMP TABLE before AS SELECT term, acquired_at, expires_at FROM leader_lease WHERE group_name = 'alpha';
SELECT pg_sleep(0.01);
SELECT leader_try_acquire('alpha', '1 hour') AS renewed;
SELECT l.term = b.term AS same_term,
       l.acquired_at = b.acquired_at AS same_acquired_at,
       l.expires_at > b.expires_at AS expiry_moved,
       l.expires_at - l.renewed_at AS ttl
FROM leader_lease l, before b WHERE l.group_name = 'alpha';
SELECT leader_acquire('alpha') AS acquire_renews, leader_term('alpha') AS term;

-- Release ends it; a second release finds nothing to end.
SELECT leader_release('alpha') AS released;
SELECT leader_release('alpha') AS released_again;
SELECT leader_is_leader('alpha') AS is_leader, leader_term('alpha') AS term,
       leader_current('alpha') AS current;
SELECT group_name, holder, kind, pid, term, state, session_alive, expires_at
FROM leader_status WHERE group_name = 'alpha';
SELECT count(*) AS liveness_locks FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 19525;

-- A new leadership of the group gets the next term.
SELECT leader_try_acquire('alpha') AS acquired, leader_term('alpha') AS term;

-- Named holders: the name, not the session, leads.
SELECT leader_try_acquire('named', '1 hour', 'pod-1') AS acquired;
SELECT leader_is_leader('named', 'pod-1') AS pod1_leads,
       leader_is_leader('named') AS session_leads,
       leader_term('named', 'pod-1') AS pod1_term,
       leader_term('named') AS session_term,
       leader_current('named') AS current;
SELECT leader_try_acquire('named', NULL, 'pod-2') AS pod2_acquired,
       leader_try_acquire('named') AS session_acquired,
       leader_release('named', 'pod-2') AS pod2_released,
       leader_release('named') AS session_released;
SELECT kind, pid, term, state, session_alive FROM leader_status WHERE group_name = 'named';
SELECT leader_try_acquire('named', '2 hours', 'pod-1') AS renewed, leader_term('named', 'pod-1') AS term;
SELECT leader_release('named', 'pod-1') AS released;

-- Expiry: the server's clock ends a lease that is not renewed.  Without the
-- background worker the end is recorded by the next change of the group.
SELECT leader_try_acquire('short', '20 milliseconds') AS acquired;
SELECT pg_sleep(0.1);
SELECT leader_is_leader('short') AS is_leader, leader_term('short') AS term,
       leader_current('short') AS current;
SELECT state, term FROM leader_status WHERE group_name = 'short';
-- A release that finds the caller's lease expired records nothing (it
-- would keep the group lock to the end of its transaction): the next change
-- of the group records the expiry.
SELECT leader_release('short') AS released;
SELECT state, term FROM leader_status WHERE group_name = 'short';
SELECT leader_try_acquire('short', '20 milliseconds', 'pod-1') AS acquired;
SELECT pg_sleep(0.1);
SELECT leader_try_acquire('short') AS taken_after_expiry, leader_term('short') AS term;

-- leader_acquire: wins at once when it can, gives up at its timeout.
SELECT leader_acquire('waited', '1 second') AS acquired;
SELECT leader_try_acquire('busy', '1 hour', 'pod-9') AS acquired;
SELECT leader_acquire('busy', '50 milliseconds') AS acquired_busy;
SELECT leader_acquire('busy', '50 milliseconds', '1 minute', 'pod-9') AS renewed_by_holder;

-- Dropping the session's advisory locks ends its session-bound leaderships.
SELECT leader_try_acquire('unlock') AS acquired;
SELECT pg_advisory_unlock_all();
SELECT leader_is_leader('unlock') AS is_leader, leader_current('unlock') AS current;
SELECT state, session_alive FROM leader_status WHERE group_name = 'unlock';
SELECT leader_try_acquire('unlock') AS acquired, leader_term('unlock') AS term;

-- SQL advisory locks cannot touch the extension's locks.
SELECT pg_try_advisory_lock(1) AS sql_lock, leader_is_leader('unlock') AS still_leads;
SELECT pg_advisory_unlock(1);

-- Force release ends whoever leads.
SELECT leader_force_release('busy') AS forced, leader_force_release('busy') AS forced_again;
SELECT leader_force_release('no such group') AS forced_unknown;

-- Transactions: a rollback leaves no row, no lock and (see events) no event.
SELECT count(*) AS locks_before FROM pg_locks
WHERE locktype = 'advisory' AND objsubid = 19525 AND pid = pg_backend_pid() \gset
BEGIN;
SELECT leader_try_acquire('rolled back') AS acquired, leader_is_leader('rolled back') AS inside;
ROLLBACK;
SELECT count(*) AS rows FROM leader_lease WHERE group_name = 'rolled back';
SELECT leader_is_leader('rolled back') AS is_leader;
SELECT count(*) - :locks_before AS new_liveness_locks FROM pg_locks
WHERE locktype = 'advisory' AND objsubid = 19525 AND pid = pg_backend_pid();

BEGIN;
SELECT leader_try_acquire('savepoint') AS acquired;
SAVEPOINT s;
SELECT leader_release('savepoint') AS released;
SELECT leader_try_acquire('savepoint') AS reacquired, leader_term('savepoint') AS term;
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT leader_is_leader('savepoint') AS is_leader, leader_term('savepoint') AS term;
SELECT count(*) - :locks_before AS new_liveness_locks FROM pg_locks
WHERE locktype = 'advisory' AND objsubid = 19525 AND pid = pg_backend_pid();

-- Renewals and releases in a rolled-back transaction leave the lease as it was.
CREATE TEMP TABLE kept AS SELECT term, expires_at FROM leader_lease WHERE group_name = 'savepoint';
BEGIN;
SELECT leader_try_acquire('savepoint', '5 hours') AS renewed;
SELECT leader_release('savepoint') AS released;
ROLLBACK;
SELECT l.term = k.term AND l.expires_at = k.expires_at AS unchanged, leader_is_leader('savepoint') AS is_leader
FROM leader_lease l, kept k WHERE l.group_name = 'savepoint';

-- A read-only transaction cannot change leadership.
BEGIN READ ONLY;
SELECT leader_try_acquire('read only');
ROLLBACK;

-- The group cap: creating a group beyond leader.max_groups fails; existing
-- groups keep working.
SET leader.max_groups = 1;
SELECT leader_try_acquire('one too many');
SELECT leader_try_acquire('alpha') AS existing_group_still_works;
RESET leader.max_groups;
SELECT count(*) > 1 AS several_groups FROM leader_lease;

-- The functions find their table through the extension's schema, not
-- through search_path.
CREATE SCHEMA decoy;
CREATE TABLE decoy.leader_lease (group_name text);
SET search_path = decoy, pg_catalog;
SELECT public.leader_try_acquire('search path') AS acquired,
       public.leader_is_leader('search path') AS is_leader;
RESET search_path;
SELECT count(*) AS decoy_rows FROM decoy.leader_lease;
DROP SCHEMA decoy CASCADE;

-- Index entries follow the rows: the partial index of held leases lists no
-- vacant group, and an index an administrator adds, even on an expression,
-- is kept up to date by the functions.
SET enable_seqscan = off;
SELECT count(*) = count(holder) AS held_index_lists_only_held
FROM leader_lease WHERE holder IS NOT NULL;
RESET enable_seqscan;
CREATE INDEX leader_lease_lower_holder ON leader_lease (lower(holder));
SELECT leader_try_acquire('expression index', '1 hour', 'POD-X') AS acquired;
SELECT leader_try_acquire('expression index', '2 hours', 'POD-X') AS renewed;
SET enable_seqscan = off;
SELECT group_name FROM leader_lease WHERE lower(holder) = 'pod-x';
RESET enable_seqscan;
SELECT leader_release('expression index', 'POD-X') AS released;
DROP INDEX leader_lease_lower_holder;

-- Terms only ever grow.
SELECT group_name, term FROM leader_lease ORDER BY group_name COLLATE "C";
