# A database's worker that leaves for any reason but its database or the
# extension being gone is started again by the launcher, within a second,
# with a LOG line that says why it left:
#   (a) pg_terminate_backend() of the worker (exit code 0): a new worker
#       within a second, "restarting" logged with "terminated", and it ends
#       an expired lease and records a session's end ("vacated");
#   (b) terminated again at once: it comes back again (at most one restart
#       a second);
#   (c) pg_cancel_backend() of the worker, which makes it fail (exit code
#       1): it comes back, "exit code 1" logged;
#   (d) DROP EXTENSION and DROP DATABASE: their worker leaves and is not
#       restarted, and nothing says it was.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use LeaderTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = preloaded_node('worker_comes_back');
$node->safe_psql('postgres', 'CREATE DATABASE d; CREATE DATABASE e');
$node->safe_psql($_, 'CREATE EXTENSION leader') foreach qw(d e);
my $d_oid = $node->safe_psql('postgres', "SELECT oid FROM pg_database WHERE datname = 'd'");
my $worker = worker_pid($node, 'd');
ok($worker, 'database d has its worker');

# Signal d's worker with $function, and wait for its successor; returns the
# new pid and the seconds it took to appear.
sub replace_worker
{
	my ($function) = @_;
	my $started = time;
	$node->safe_psql('postgres', "SELECT $function($worker)");
	my $new = replaced_worker_pid($node, 'd', $worker);
	return ($new, time - $started);
}

# ---- (a) terminated ----

my $log_offset = -s $node->logfile;
my $leader = session($node, 'session-leader', 'd');
$leader->query_safe("SELECT leader_try_acquire('held', '1 hour')");
sleep(1);    # restarts of one database's worker are a second apart
my ($new, $took) = replace_worker('pg_terminate_backend');
ok($new, '(a) a terminated worker is replaced');
cmp_ok($took, '<', 1.5, sprintf('(a) at once (%.3f s)', $took));
ok( $node->wait_for_log(
		qr/LOG:  leader: restarting the worker for database $d_oid\n.*DETAIL:  It was terminated \(SIGTERM\)\./,
		$log_offset),
	'(a) the launcher logs the restart and why the worker left');
$worker = $new;
ok(worker_ends_lease($node, 'd', 'after-a'),
	'(a) the new worker ends an expired lease, with an event');
my $listener = listen_leader_changed($node, 'd');
ok(kill_client($leader), '(a) the client of a session-bound leader is killed');
my @events = wait_for_events($listener,
	sub { grep { $_->{event} eq 'vacated' && $_->{group} eq 'held' } @_ }, 10);
my ($vacated) = grep { $_->{event} eq 'vacated' } @events;
is($vacated->{sender}, $worker, '(a) the new worker sends "vacated" once its session ends');
$listener->quit;

# ---- (b) terminated again at once ----

($new, $took) = replace_worker('pg_terminate_backend');
ok($new, '(b) terminated again at once, it is replaced again');
cmp_ok($took, '<', 2.5, sprintf('(b) within a second or so (%.3f s)', $took));
$worker = $new;

# ---- (c) failed ----

$log_offset = -s $node->logfile;
($new, $took) = replace_worker('pg_cancel_backend');
ok($new, '(c) a worker that failed is replaced');
ok( $node->wait_for_log(
		qr/LOG:  leader: restarting the worker for database $d_oid\n.*DETAIL:  It exited with exit code 1 after an error\./,
		$log_offset),
	'(c) the launcher logs the restart and the exit code');
$worker = $new;
ok(worker_ends_lease($node, 'd', 'after-c'),
	'(c) the new worker ends an expired lease, with an event');

# ---- (d) DROP EXTENSION, DROP DATABASE ----

$log_offset = -s $node->logfile;
my $e_oid = $node->safe_psql('postgres', "SELECT oid FROM pg_database WHERE datname = 'e'");
$node->safe_psql('d', 'DROP EXTENSION leader');
$node->safe_psql('postgres', 'DROP DATABASE e');
ok( $node->poll_query_until(
		'postgres', q{
		SELECT count(*) = 0 FROM pg_stat_activity
		WHERE backend_type = 'leader worker' AND datname IS DISTINCT FROM 'postgres'}),
	'(d) the workers of d (extension dropped) and e (dropped) leave');
sleep(2);
is( $node->safe_psql(
		'postgres', q{
		SELECT count(*) FROM pg_stat_activity
		WHERE backend_type = 'leader worker' AND datname IS DISTINCT FROM 'postgres'}),
	'0',
	'(d) neither comes back');
unlike(
	slurp_file($node->logfile, $log_offset),
	qr/restarting the worker for database ($d_oid|$e_oid)/,
	'(d) no restart is logged for them');
ok(worker_ends_lease($node, 'postgres', 'after-d'),
	'(d) database postgres still has its worker');

$node->stop;
done_testing();
