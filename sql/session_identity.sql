-- Who a session-bound lease belongs to, and where the functions run.
--
-- A session-bound lease belongs to the session acting as the role that took
-- it: under another current role (SET ROLE, a SECURITY DEFINER function) the
-- session does not lead it, and back under the role it does again.
CREATE ROLE leader_tenant_a;
CREATE ROLE leader_tenant_b;
GRANT leader_tenant_a, leader_tenant_b TO CURRENT_USER;

SET ROLE leader_tenant_a;
SELECT leader_try_acquire('tenant', '1 hour') AS a_acquired, leader_term('tenant') AS a_term;

SET ROLE leader_tenant_b;
SELECT leader_is_leader('tenant') AS b_leads, leader_term('tenant') AS b_term;
SELECT leader_try_acquire('tenant', '1 hour') AS b_acquired;
SELECT leader_acquire('tenant', '10 milliseconds', '1 hour') AS b_waited;
SELECT leader_release('tenant') AS b_released;

-- A SECURITY DEFINER function runs as its owner: not the lease's role.
RESET ROLE;
CREATE FUNCTION tenant_b_release() RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$ BEGIN RETURN leader_release('tenant'); END $$;
ALTER FUNCTION tenant_b_release() OWNER TO leader_tenant_b;
SET ROLE leader_tenant_a;
SELECT tenant_b_release() AS definer_released;

-- Back under the role that took it, the session leads, with the same term.
SELECT leader_is_leader('tenant') AS a_leads, leader_term('tenant') AS a_term;
SELECT state, term, role::regrole FROM leader_status WHERE group_name = 'tenant';
SELECT leader_release('tenant') AS a_released;
RESET ROLE;
DROP FUNCTION tenant_b_release();

-- leader_session_alive probes only the group's current session-bound lease,
-- named by its own values; for anything else (a future term, another pid,
-- a named lease, a group without a lease) it answers NULL, without probing.
SELECT leader_try_acquire('probe', '1 hour') AS acquired;
SELECT leader_session_alive(group_name, term, pid, backend_start) AS current_lease,
       leader_session_alive(group_name, term + 1, pid, backend_start) AS next_term,
       leader_session_alive(group_name, term, pid + 1, backend_start) AS other_pid,
       leader_session_alive(group_name, term, pid, backend_start + interval '1 second') AS other_start,
       leader_session_alive('no such group', term, pid, backend_start) AS no_group
  FROM leader_lease WHERE group_name = 'probe';
SELECT leader_try_acquire('probe-named', '1 hour', 'pod') AS acquired;
SELECT leader_session_alive('probe-named', term, pg_backend_pid(), now()) AS named_lease
  FROM leader_lease WHERE group_name = 'probe-named';
SELECT leader_release('probe') AND leader_release('probe-named', 'pod') AS released;

-- No function runs in a parallel worker, even called from a wrapper that
-- claims to be PARALLEL SAFE (there it would not see this session's lease).
CREATE FUNCTION parallel_wrapper(g text) RETURNS boolean
LANGUAGE plpgsql PARALLEL SAFE
AS $$ BEGIN RETURN leader_is_leader(g); END $$;
CREATE FUNCTION parallel_acquire(g text) RETURNS boolean
LANGUAGE plpgsql PARALLEL SAFE
AS $$ BEGIN RETURN leader_try_acquire(g); END $$;
SELECT leader_try_acquire('par') AS acquired;
SELECT set_config(CASE WHEN current_setting('server_version_num')::int >= 160000
                       THEN 'debug_parallel_query' ELSE 'force_parallel_mode' END,
                  'on', false) AS parallel_forced;
SET max_parallel_workers_per_gather = 2;
\set VERBOSITY terse
SELECT parallel_wrapper('par');
SELECT parallel_acquire('par-2');
\set VERBOSITY default
SELECT set_config(CASE WHEN current_setting('server_version_num')::int >= 160000
                       THEN 'debug_parallel_query' ELSE 'force_parallel_mode' END,
                  'off', false) AS parallel_forced;
SELECT parallel_wrapper('par') AS leads_outside_parallel_workers,
       (SELECT count(*) FROM leader_lease WHERE group_name = 'par-2') AS par_2_rows;
SELECT leader_release('par') AS released;
DROP FUNCTION parallel_wrapper(text);
DROP FUNCTION parallel_acquire(text);

DROP ROLE leader_tenant_a;
DROP ROLE leader_tenant_b;
