# leader_acquire waits (without a background worker: a bounded poll every
# leader.poll_interval) until the caller leads or its timeout passes:
#   - it wins promptly once the leader releases, or the leader's client dies;
#   - it answers false after its timeout, having really waited;
#   - statement_timeout and pg_cancel_backend end it with SQLSTATE 57014;
#   - while it waits it holds no lock on the group and no row lock, so the
#     leader keeps renewing;
#   - a waiting candidate whose client dies ends, and never wins.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use LeaderTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = PostgreSQL::Test::Cluster->new('acquire_wait');
$node->init;
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION leader');

is($node->safe_psql('postgres', "LOAD 'leader'; SHOW leader.poll_interval"),
	'100ms', 'leader_acquire polls every 100 ms by default');

# The group lock tags of the extension carry this in pg_locks.objsubid.
my $GROUP_LOCKSPACE = 19526;

my $listener = listen_leader_changed($node, 'postgres');

# The events committed since the last call, as "event term pid".
sub events
{
	return summary(events_so_far($node, 'postgres', $listener));
}

# ---- 1. the leader releases: the waiting candidate wins promptly ----

my $sess_a = session($node, 'leader-a');
is($sess_a->query_safe("SELECT leader_try_acquire('g')"), 't', 'A leads "g"');
my $a_term = $sess_a->query_safe("SELECT leader_term('g')");

my $sess_b = session($node, 'candidate-b');
my $tag = start_query($sess_b, "SELECT leader_acquire('g', '30s');");
wait_until_waiting($node, $sess_b, 'release');

# While B waits: no lock on the group, no transaction id (so no row lock),
# no lock on the lease table; and A renews as often as it likes.
my ($locks_ok, $renewals_ok) = (1, 1);
foreach my $i (1 .. 10)
{
	my $locks = $node->safe_psql(
		'postgres', qq{
		SELECT count(*) FROM pg_locks
		WHERE pid = $sess_b->{backend_pid} AND granted
		  AND (objsubid = $GROUP_LOCKSPACE
		       OR locktype IN ('tuple', 'transactionid')
		       OR relation = 'leader_lease'::regclass)});
	$locks_ok = 0 if $locks ne '0';
	$renewals_ok = 0
	  if $sess_a->query_safe("SELECT leader_try_acquire('g'), leader_term('g')") ne
	  "t|$a_term";
}
ok($locks_ok,
	'the waiting session holds no group lock, row lock or lease table lock');
ok($renewals_ok, 'A renews (same term) again and again while B waits');
ok(!query_done($sess_b, $tag), 'B is still waiting while A leads');
is($node->safe_psql('postgres', "SELECT leader_current('g')"),
	"leader-a (pid $sess_a->{backend_pid})", 'A is still the leader');
is_deeply(events(), ["acquired $a_term $sess_a->{backend_pid}"],
	'renewals while B waits send no events');

my $released_at = time;
is($sess_a->query_safe("SELECT leader_release('g')"), 't', 'A releases "g"');
my ($out, $err) = finish_query($sess_b, $tag);
my $elapsed = time - $released_at;
is($out, 't', 'the waiting leader_acquire returns true');
is($err, '', 'without an error');
ok($elapsed < 5, "it returns promptly after the release (${elapsed}s)");
is($sess_b->query_safe("SELECT leader_term('g')"),
	$a_term + 1, 'B leads with the next term');
is_deeply(
	events(),
	[
		"released $a_term $sess_a->{backend_pid}",
		'acquired ' . ($a_term + 1) . " $sess_b->{backend_pid}"
	],
	'events: released by A, then acquired by B');
$sess_b->query_safe("SELECT leader_release('g')");
events();

# ---- 2. the leader's client is killed: the waiting candidate wins promptly ----

my $sess_k = session($node, 'leader-killed');
is($sess_k->query_safe("SELECT leader_try_acquire('g')"), 't', 'K leads "g"');
my $k_term = $sess_k->query_safe("SELECT leader_term('g')");
$tag = start_query($sess_b, "SELECT leader_acquire('g', '30s');");
wait_until_waiting($node, $sess_b, 'kill');
ok(!query_done($sess_b, $tag), 'B waits while K leads');

my $killed_at = time;
ok(kill_client($sess_k), 'SIGKILL sent to K\'s psql client');
($out, $err) = finish_query($sess_b, $tag);
$elapsed = time - $killed_at;
is($out, 't', 'the waiting leader_acquire returns true after the kill');
ok($elapsed < 5,
	"it returns promptly after the kill, long before the 15 s TTL (${elapsed}s)");
is($sess_b->query_safe("SELECT leader_term('g')"),
	$k_term + 1, 'B leads with the next term');
is_deeply(
	events(),
	[
		"acquired $k_term $sess_k->{backend_pid}",
		"vacated $k_term $sess_k->{backend_pid}",
		'acquired ' . ($k_term + 1) . " $sess_b->{backend_pid}"
	],
	'events: acquired by K, vacated by K\'s end, acquired by B');

# ---- 3. a timeout while someone else leads: false, after really waiting ----

# B leads "g" now.  The second column is measured by the server after
# leader_acquire returned.
my ($got, $waited) = split /\|/,
  $node->safe_psql('postgres',
	"SELECT leader_acquire('g', '300ms'), extract(epoch FROM clock_timestamp() - statement_timestamp())"
  );
is($got, 'f', 'leader_acquire(g, 300ms) returns false while B leads');
ok($waited >= 0.3, "it waited its whole timeout first (${waited}s)");
ok($waited < 5, "and not much longer (${waited}s)");
is($sess_b->query_safe("SELECT leader_is_leader('g')"), 't', 'B still leads');

# ---- 4. statement_timeout ends a waiting leader_acquire ----

my $t0 = time;
my ($ret, $stdout, $stderr) = $node->psql(
	'postgres', qq{
	\\set VERBOSITY verbose
	SET statement_timeout = '500ms';
	SELECT leader_acquire('g', '30s');
	SELECT 'session still usable';
}, on_error_stop => 0);
$elapsed = time - $t0;
like(
	$stderr,
	qr/ERROR:  57014: canceling statement due to statement timeout/,
	'statement_timeout ends a waiting leader_acquire with SQLSTATE 57014');
like($stdout, qr/session still usable/, 'the session goes on after it');
ok($elapsed < 10, "well before its own 30 s timeout (${elapsed}s)");
is($sess_b->query_safe("SELECT leader_is_leader('g')"), 't', 'B still leads');

# ---- 5. pg_cancel_backend ends a waiting leader_acquire ----

my $sess_c = session($node, 'candidate-c');
$tag = start_query($sess_c, "SELECT leader_acquire('g');");    # no time limit
wait_until_waiting($node, $sess_c, 'cancel');
is($node->safe_psql('postgres', "SELECT pg_cancel_backend($sess_c->{backend_pid})"),
	't', 'pg_cancel_backend() of the waiting session');
($out, $err) = finish_query($sess_c, $tag);
like(
	$err,
	qr/ERROR:  57014: canceling statement due to user request/,
	'pg_cancel_backend ends a waiting leader_acquire with SQLSTATE 57014');
is($sess_c->query_safe("SELECT leader_is_leader('g')"),
	'f', 'the cancelled session does not lead');
is($sess_b->query_safe("SELECT leader_is_leader('g')"), 't', 'B still leads');
is_deeply(events(), [], 'no events from the timed-out or cancelled waits');

# ---- 6. a waiting candidate whose client dies never wins ----

# D waits without a time limit; its psql is killed.  Its backend must end
# (it checks its client after every sleep), not stay to win the group for a
# session nobody listens to.
my $sess_d = session($node, 'candidate-d');
$tag = start_query($sess_d, "SELECT leader_acquire('g');");
wait_until_waiting($node, $sess_d, 'dead waiter');
ok(kill_client($sess_d), 'SIGKILL sent to D\'s psql client');
ok(backend_gone($node, $sess_d->{backend_pid}),
	'the waiting backend of the killed client ends while B still leads');
is($sess_b->query_safe("SELECT leader_release('g')"), 't', 'B releases "g"');
is(lease_status($node, 'postgres', 'g', 'state'),
	'vacant', 'nobody took the group: the dead candidate did not win');
is_deeply(events(), [ 'released ' . ($k_term + 1) . " $sess_b->{backend_pid}" ],
	'events: only B\'s release');

$sess_c->quit;
$sess_b->quit;
$sess_a->quit;
$listener->quit;
$node->stop;
done_testing();
