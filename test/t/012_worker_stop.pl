# A worker waiting inside PostgreSQL must still leave when asked to, since
# those waits end only for an interrupt. (Found by the fault-injection run: a
# fast shutdown of a primary whose standby had just gone waited forever for
# the worker's commit; and a restart could hang on a worker waiting for a
# lock.)
#   (a) the worker's commit (ending an expired lease) waits for a
#       synchronous standby that is not there: a fast shutdown completes, and
#       the worker leaves with exit code 0;
#   (b) the same wait, then DROP DATABASE of the worker's database: the
#       worker leaves and the drop succeeds;
#   (c) the worker waits for a lock on leader_lease that a prepared
#       transaction holds: a fast restart completes.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use LeaderTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('worker_stop');
$node->init(allows_streaming => 1);    # max_wal_senders > 0: sync rep applies
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'leader'");
$node->append_conf('postgresql.conf', 'max_prepared_transactions = 2');
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE other');
$node->safe_psql($_, 'CREATE EXTENSION leader') foreach qw(postgres other);
ok(worker_pid($node, 'postgres') && worker_pid($node, 'other'),
	'both databases have their worker');

# ---- (c) fast restart while the worker waits for a lock --------------------------------
my $holder = session($node, 'lock-case');
$holder->query_safe("SELECT leader_try_acquire('locked', '1 hour')");
$node->safe_psql('postgres',
	"BEGIN; LOCK TABLE leader_lease IN ACCESS EXCLUSIVE MODE; PREPARE TRANSACTION 'hold'");
ok(kill_client($holder), '(c) the client of a session-bound leader is killed');
ok( $node->poll_query_until('postgres', q{
		SELECT count(*) = 1 FROM pg_stat_activity
		WHERE backend_type = 'leader worker' AND wait_event_type = 'Lock'}),
	'(c) the worker, told of the session end, waits for the table lock');
my $restart_began = time;
# stop and start: Cluster.pm's restart() takes no shutdown mode before 17 and
# named parameters from 17 on
$node->stop('fast');
$node->start;
cmp_ok(time - $restart_began, '<', 30, '(c) a fast restart completes');
$node->safe_psql('postgres', "ROLLBACK PREPARED 'hold'");
ok( $node->poll_query_until(
		'postgres', "SELECT count(*) = 0 FROM leader_lease WHERE holder IS NOT NULL"),
	'(c) once the lock is gone, the worker ends the lease of the ended session');

# From now on every commit waits for a standby that does not exist, but for
# the test's own sessions, which commit locally.
$node->append_conf('postgresql.conf', "synchronous_standby_names = 'nobody'");
$node->reload;
$ENV{PGOPTIONS} = '-c synchronous_commit=local';

# A named lease of 1 s in database $db, which the worker ends (and then waits
# for the standby); returns once the worker waits.
sub worker_waits_for_standby
{
	my ($db) = @_;
	$node->safe_psql($db, "SELECT leader_try_acquire('g', '1 s', 'h')");
	return $node->poll_query_until('postgres', qq{
		SELECT count(*) = 1 FROM pg_stat_activity
		WHERE backend_type = 'leader worker' AND datname = '$db'
		  AND wait_event = 'SyncRep'});
}

# ---- (b) DROP DATABASE while its worker waits ----------------------------------------
ok(worker_waits_for_standby('other'),
	'(b) the worker of database other waits for the standby');
my ($ret, $out, $err) = $node->psql('postgres', 'DROP DATABASE other');
is($ret, 0, '(b) DROP DATABASE of its database succeeds') or diag($err);

# ---- (a) fast shutdown while the worker waits ----------------------------------------
ok(worker_waits_for_standby('postgres'),
	'(a) the worker of database postgres waits for the standby');
my $started = time;
$node->stop('fast');
cmp_ok(time - $started, '<', 30, '(a) a fast shutdown completes');
my $log = slurp_file($node->logfile);
unlike($log, qr/background worker "leader worker" \(PID \d+\) exited with exit code 1/,
	'(a) the worker left with exit code 0');

done_testing();
