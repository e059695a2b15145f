# The background worker runs as a superuser in a database whose owner need
# not be one: nothing the owner can set with ALTER DATABASE ... SET may make
# it run her code or stop it.
#   (a) the owner alice puts a schema of hers first in the database's
#       search_path, with an operator = on text whose function would make
#       her a superuser (and records that it ran); the worker is restarted
#       (by her failed ALTER DATABASE ... SET TABLESPACE) while bob, another
#       unprivileged role, holds a lease: she is no superuser, her function
#       never ran, and the worker still ends an expired lease;
#   (b) the owner sets statement_timeout = 1ms, lock_timeout = 1ms,
#       idle_in_transaction_session_timeout = 1ms,
#       default_transaction_read_only = on, default_transaction_isolation =
#       serializable and exit_on_error = on for the database: after a
#       restart the worker still ends expired leases, each with an event;
#   (c) with those settings, the worker waits for a lock on leader_lease
#       (held by a superuser's transaction) as long as it is held, then
#       ends the lease: no lock timeout, no exit.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use LeaderTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = preloaded_node('worker_hostile_settings');
$node->safe_psql(
	'postgres', q{
	CREATE ROLE alice LOGIN;
	CREATE ROLE bob LOGIN;
	CREATE DATABASE d OWNER alice;
});
$node->safe_psql('d', 'CREATE EXTENSION leader');
ok(worker_pid($node, 'd'), 'database d has its worker');

# Alice's trap, all made as alice.
$node->safe_psql(
	'd', q{
	SET ROLE alice;
	CREATE SCHEMA evil;
	CREATE TABLE evil.ran (at timestamptz);
	CREATE FUNCTION evil.text_eq(a text, b text) RETURNS boolean
	LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO evil.ran VALUES (clock_timestamp());
		ALTER ROLE alice SUPERUSER;
		RETURN a OPERATOR(pg_catalog.=) b;
	END $$;
	CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.text_eq);
});
is( $node->safe_psql(
		'd', q{
		SET ROLE bob;
		SELECT leader_try_acquire('long', '1 hour', 'bob-pod');
	}),
	't',
	'(a) bob holds a lease in d');

# Alice makes the worker leave and come back, from another database.
sub restart_worker_as_alice
{
	my ($what) = @_;
	my $old = worker_pid($node, 'd');
	my ($ret, $out, $err) = $node->psql('postgres',
		'SET ROLE alice; ALTER DATABASE d SET TABLESPACE no_such_tablespace');
	like($err, qr/tablespace "no_such_tablespace" does not exist/,
		"$what: alice's ALTER DATABASE d SET TABLESPACE fails");
	ok(replaced_worker_pid($node, 'd', $old), "$what: d has a new worker");
	return;
}

# ---- (a) search_path ----

$node->safe_psql('d',
	'SET ROLE alice; ALTER DATABASE d SET search_path = evil, pg_catalog');
# The test's own sessions go without it.
$ENV{PGOPTIONS} = '-c search_path=public';
restart_worker_as_alice('(a)');
ok(worker_ends_lease($node, 'd', 'short-a'),
	'(a) the new worker ends an expired lease, with an event');
is( $node->safe_psql(
		'postgres', q{
		SELECT rolsuper FROM pg_roles WHERE rolname = 'alice'}),
	'f',
	'(a) alice is not a superuser');
is($node->safe_psql('d', 'SELECT count(*) FROM evil.ran'),
	'0', '(a) her operator\'s function never ran');
is($node->safe_psql('d', q{SELECT holder FROM leader_lease WHERE group_name = 'long'}),
	'bob-pod', '(a) bob\'s lease is untouched');

# ---- (b) timeouts, read-only and isolation defaults, exit_on_error ----

my @hostile = (
	"statement_timeout = '1ms'",
	"lock_timeout = '1ms'",
	"idle_in_transaction_session_timeout = '1ms'",
	'default_transaction_read_only = on',
	'default_transaction_isolation = serializable',
	'exit_on_error = on');
$node->safe_psql('d',
	'SET ROLE alice;' . join('', map { "ALTER DATABASE d SET $_;" } @hostile));
# The test's own sessions in d go without them.
$ENV{PGOPTIONS} = join(' ',
	'-c statement_timeout=0 -c lock_timeout=0',
	'-c idle_in_transaction_session_timeout=0',
	'-c default_transaction_read_only=off',
	'-c default_transaction_isolation=read\ committed -c exit_on_error=off',
	'-c search_path=public');
is( $node->safe_psql(
		'postgres', q{
		SELECT count(*) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
		WHERE d.datname = 'd' AND s.setrole = 0 AND array_length(s.setconfig, 1) = 7}),
	'1',
	'(b) d has the six settings and the search_path');
restart_worker_as_alice('(b)');
ok(worker_ends_lease($node, 'd', "short-b$_"),
	"(b) the new worker ends expired lease $_ of 3, with an event")
  foreach 1 .. 3;
is( $node->safe_psql(
		'postgres', q{
		SELECT rolsuper FROM pg_roles WHERE rolname = 'alice'}),
	'f',
	'(b) alice is still not a superuser');
is($node->safe_psql('d', 'SELECT count(*) FROM evil.ran'),
	'0', '(b) her operator\'s function never ran');

# ---- (c) the worker waits for a lock: no lock_timeout, no exit_on_error ----

# A superuser's transaction holds a lock on leader_lease that the worker's
# change must wait for (the owner's lock_timeout would make that wait fail,
# and her exit_on_error the failure end the worker).
my $worker = worker_pid($node, 'd');
my $locker = session($node, 'locker', 'd');
$node->safe_psql('d', "SELECT leader_try_acquire('locked', '300ms', 'h')");
$locker->query_safe('BEGIN; LOCK TABLE leader_lease IN SHARE MODE');
ok( $node->poll_query_until(
		'postgres', qq{
		SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $worker}),
	'(c) the worker waits for the lock to end the expired lease');
sleep(1);
is( $node->safe_psql(
		'postgres', qq{
		SELECT wait_event_type FROM pg_stat_activity WHERE pid = $worker}),
	'Lock',
	'(c) a second later it still waits, the same process');
$locker->query_safe('COMMIT');
ok( $node->poll_query_until(
		'd', q{SELECT holder IS NULL FROM leader_lease WHERE group_name = 'locked'}),
	'(c) once the lock is gone, it ends the lease');
is(worker_pid($node, 'd'), $worker, '(c) the worker never left');
$locker->quit;

$node->stop;
done_testing();
