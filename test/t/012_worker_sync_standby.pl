# A worker whose commit waits for a synchronous standby that does not answer
# must not hold up a shutdown, nor a database command that needs it gone.
# (Found by the fault-injection run: a fast shutdown of a primary whose
# standby had just gone waited forever for the worker.)
#   (a) the worker ends an expired lease; its commit waits for a standby
#       that is not there; a fast shutdown still completes, and the worker
#       left with exit code 0;
#   (b) the same wait, then DROP DATABASE of the worker's database: the
#       worker leaves and the drop succeeds.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use LeaderTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('worker_sync_standby');
$node->init(allows_streaming => 1);    # max_wal_senders > 0: sync rep applies
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'leader'");
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE other');
$node->safe_psql($_, 'CREATE EXTENSION leader') foreach qw(postgres other);
ok(worker_pid($node, 'postgres') && worker_pid($node, 'other'),
	'both databases have their worker');

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
