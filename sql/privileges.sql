-- Privileges: ordinary roles read the table but change it only through the
-- functions; a role cannot renew, release or take another role's named
-- holder; only granted roles may force a release.
CREATE ROLE leader_alice;
CREATE ROLE leader_bob;

SET ROLE leader_alice;
INSERT INTO leader_lease (group_name, term) VALUES ('forged', 1);
UPDATE leader_lease SET term = term + 100;
DELETE FROM leader_lease;
TRUNCATE leader_lease;
SELECT count(*) >= 0 AS can_read_table FROM leader_lease;
SELECT count(*) >= 0 AS can_read_view FROM leader_status;

SELECT leader_try_acquire('shared', '1 hour', 'pod-a') AS alice_acquired;
SELECT leader_term('shared', 'pod-a') AS alice_term;

-- Bob uses Alice's holder name: he neither renews, releases nor takes it.
SET ROLE leader_bob;
SELECT leader_try_acquire('shared', '1 hour', 'pod-a') AS bob_renewed,
       leader_acquire('shared', '10 milliseconds', '1 hour', 'pod-a') AS bob_acquired,
       leader_release('shared', 'pod-a') AS bob_released,
       leader_is_leader('shared', 'pod-a') AS bob_leads,
       leader_term('shared', 'pod-a') AS bob_term,
       leader_current('shared') AS current;
SELECT leader_force_release('shared');
-- Nor may he fence Alice's term (he could freeze the group by idling).
SELECT leader_fence('shared', 1);
SELECT holder, role, term, state FROM leader_status WHERE group_name = 'shared';

-- Alice, in another session of the same role, still renews it.
SET ROLE leader_alice;
SELECT leader_try_acquire('shared', '2 hours', 'pod-a') AS alice_renewed,
       leader_is_leader('shared', 'pod-a') AS alice_leads;

-- An administrator grants force release to Bob.
RESET ROLE;
GRANT EXECUTE ON FUNCTION leader_force_release(text) TO leader_bob;
SET ROLE leader_bob;
SELECT leader_force_release('shared') AS bob_forced;
SELECT holder, role, term, state FROM leader_status WHERE group_name = 'shared';

-- After the release Bob may lead the group under any name, his own role's.
SELECT leader_try_acquire('shared', '1 hour', 'pod-a') AS bob_acquired,
       leader_term('shared', 'pod-a') AS bob_term;
SET ROLE leader_alice;
SELECT leader_is_leader('shared', 'pod-a') AS alice_leads,
       leader_release('shared', 'pod-a') AS alice_released;
SET ROLE leader_bob;
SELECT leader_release('shared', 'pod-a') AS bob_released;

RESET ROLE;
REVOKE EXECUTE ON FUNCTION leader_force_release(text) FROM leader_bob;
SELECT has_function_privilege('public', 'leader_force_release(text)', 'EXECUTE') AS public_may_force;
DROP ROLE leader_alice;
DROP ROLE leader_bob;
