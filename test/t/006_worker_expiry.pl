# With the library preloaded, the background worker ends expired leases at
# their expires_at, with no call of any client on the group, and sends
# "expired":
#   (a) a named lease that nobody renews: "expired" arrives at expires_at
#       (not before it, and less than 2 s after it), sent by the worker;
#   (b) a session-bound leader whose client is frozen (SIGSTOP) past its TTL:
#       its lease expires although its session lives and keeps its liveness
#       lock, a waiting candidate wins with the next term, and once the old
#       leader thaws its fence with the old term fails (55000) and it no
#       longer leads;
#   (c) a long transaction that fenced group A does not delay the expiry of
#       group B; A's own expiry is recorded only once the fence commits;
#   (d) stalled listeners (one idle in an open transaction, one whose client
#       never reads, its backend stuck writing to it) do not hold back the
#       expiry events of the others.
#
# Without preloading, the lazy detection of expiry is 001-004's subject.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use LeaderTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = PostgreSQL::Test::Cluster->new('worker_expiry');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'leader'");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION leader');

my $worker = worker_pid($node, 'postgres');
ok($worker, 'the leader worker of database postgres runs');

my $listener = listen_leader_changed($node, 'postgres');

# psql clients stopped with SIGSTOP, to wake if the test dies before it does.
my %stopped;

sub stop_client
{
	my ($s) = @_;
	$stopped{ client_pid($s) } = 1;
	return kill('STOP', client_pid($s));
}

sub continue_client
{
	my ($s) = @_;
	delete $stopped{ client_pid($s) };
	return kill('CONT', client_pid($s));
}

END { kill('CONT', keys %stopped) if %stopped; }

# Measured latencies, reported at the end.
my @report;

# The server's clock, as epoch seconds, now or at the timestamp $ts.
sub epoch
{
	my ($ts) = @_;
	return $node->safe_psql('postgres',
		defined $ts
		? "SELECT extract(epoch FROM '$ts'::timestamptz)"
		: 'SELECT extract(epoch FROM clock_timestamp())');
}

# Wait for the "expired" event of $group, for 10 s at most (every lease here
# lasts 2 s or less); returns it and the events read with it.
sub wait_expired
{
	my ($group) = @_;
	my @events = wait_for_events($listener,
		sub { grep { $_->{event} eq 'expired' && $_->{group} eq $group } @_ },
		10);
	my ($expired) =
	  grep { $_->{event} eq 'expired' && $_->{group} eq $group } @events;
	return ($expired, @events);
}

# Check that $expired (an "expired" event with seen_at) came at its
# expires_at: not before it, less than 2 s after it.
sub check_on_time
{
	my ($what, $expired) = @_;
	my $late = $expired->{seen_at} - epoch($expired->{expires_at});
	ok($late >= 0,
		sprintf('%s: "expired" did not come before expires_at (%.3f s after it)',
			$what, $late));
	ok($late < 2,
		sprintf('%s: "expired" came less than 2 s after expires_at (%.3f s)',
			$what, $late));
	push @report, sprintf('%s: expired %.3f s after expires_at', $what, $late);
	return;
}

# ---- (a) a named lease that nobody renews ----

is( $node->safe_psql(
		'postgres', "SELECT leader_try_acquire('ga', '500ms', 'pod-a')"),
	't', '(a) pod-a leads "ga" for 500 ms');
my ($term_a, $expires_a) = split /\|/,
  $node->safe_psql('postgres',
	"SELECT term, extract(epoch FROM expires_at) FROM leader_lease WHERE group_name = 'ga'"
  );
{
	my ($expired, @events) = wait_expired('ga');
	ok($events[0]{seen_at} < $expires_a,
		'(a) the listener was watching before expires_at');
	is_deeply(
		summary(@events, events_so_far($node, 'postgres', $listener)),
		[ "acquired $term_a null", "expired $term_a null" ],
		'(a) events: acquired, then expired, for the same term');
	is($expired->{sender}, $worker,
		'(a) "expired" was sent by the leader worker');
	is($expired->{holder}, 'pod-a', '(a) the expired lease is pod-a\'s');
	check_on_time('(a) named lease of 500 ms', $expired);
	is( $node->safe_psql(
			'postgres',
			"SELECT holder IS NULL, term FROM leader_lease WHERE group_name = 'ga'"),
		"t|$term_a",
		'(a) the end is recorded in leader_lease, the term kept');
}

# ---- (b) a frozen session-bound leader ----

my $old = session($node, 'frozen');
my $old_pid = $old->{backend_pid};
is($old->query_safe("SELECT leader_try_acquire('gb', '1s')"),
	't', '(b) a session leads "gb" for 1 s');
my $term_b = $old->query_safe("SELECT leader_term('gb')");
my $candidate = session($node, 'candidate');
my $tag = start_query($candidate, "SELECT leader_acquire('gb', '30s');");
wait_until_waiting($node, $candidate, '(b)');

ok(stop_client($old), '(b) SIGSTOP sent to the leader\'s psql client');
{
	my ($expired, @events) = wait_expired('gb');
	my ($out, $err) = finish_query($candidate, $tag);
	is($out, 't', '(b) the waiting candidate wins');
	my $new_term = $candidate->query_safe("SELECT leader_term('gb')");
	is($new_term, $term_b + 1, '(b) with the next term');
	push @events,
	  wait_for_events($listener,
		sub { grep { $_->{event} eq 'acquired' && $_->{group} eq 'gb' } @events, @_ },
		10);
	is_deeply(
		summary(@events, events_so_far($node, 'postgres', $listener)),
		[
			"acquired $term_b $old_pid", "expired $term_b $old_pid",
			"acquired $new_term $candidate->{backend_pid}"
		],
		'(b) events: acquired, expired (old term and pid), acquired (next term)');
	check_on_time('(b) frozen session-bound leader of 1 s', $expired);
}
is( $node->safe_psql(
		'postgres', qq{
		SELECT count(*) FROM pg_locks
		WHERE pid = $old_pid AND locktype = 'advisory' AND objsubid = 19525 AND granted}
	),
	'1',
	'(b) the frozen session still holds its liveness lock: it expired by TTL alone');

ok(continue_client($old), '(b) SIGCONT sent to the old leader\'s client');
$tag = start_query($old, "SELECT leader_fence('gb', $term_b);");
my ($out, $err) = finish_query($old, $tag);
like($err, qr/ERROR:  55000: /,
	'(b) the old leader\'s fence with its old term fails with SQLSTATE 55000');
is($old->query_safe("SELECT leader_is_leader('gb')"),
	'f', '(b) the old leader no longer leads');
is($candidate->query_safe("SELECT leader_is_leader('gb')"),
	't', '(b) the candidate leads');
is($candidate->query_safe("SELECT leader_release('gb')"),
	't', '(b) the candidate releases');
events_so_far($node, 'postgres', $listener);
$old->quit;
$candidate->quit;

# ---- (c) a long fenced transaction on A does not delay B's expiry ----

my $fencer = session($node, 'fencer');
my ($term_fa, $term_fb) = $node->safe_psql(
	'postgres', qq{
	SELECT leader_try_acquire('fa', '1s', 'pod-fa');
	SELECT leader_try_acquire('fb', '2s', 'pod-fb');
	SELECT leader_term('fa', 'pod-fa');
	SELECT leader_term('fb', 'pod-fb');
}) =~ /^t\nt\n(\d+)\n(\d+)$/;
ok($term_fa && $term_fb, '(c) pod-fa leads "fa" for 1 s, pod-fb "fb" for 2 s');
$fencer->query_safe("BEGIN; SELECT leader_fence('fa', $term_fa);");
{
	my ($expired, @events) = wait_expired('fb');
	is_deeply(
		summary(@events, events_so_far($node, 'postgres', $listener)),
		[ "acquired $term_fa null", "acquired $term_fb null", "expired $term_fb null" ],
		'(c) "fb" expired while "fa", expired earlier, stays fenced');
	check_on_time('(c) "fb" while "fa" is fenced', $expired);
	is($expired->{sender}, $worker, '(c) "expired" of "fb" was sent by the worker');
}
is( $node->safe_psql(
		'postgres', qq{
		SELECT state FROM pg_stat_activity WHERE pid = $fencer->{backend_pid}}),
	'idle in transaction',
	'(c) the fencing transaction is still open');
is( $node->safe_psql(
		'postgres', qq{
		SELECT l.holder, s.state
		FROM leader_lease l JOIN leader_status s USING (group_name)
		WHERE group_name = 'fa'}),
	'pod-fa|expired',
	'(c) "fa" is past expires_at, but its end is not recorded while fenced');
my $committed_at = time;
$fencer->query_safe('COMMIT');
{
	my ($expired, @events) = wait_expired('fa');
	is_deeply(
		summary(@events, events_so_far($node, 'postgres', $listener)),
		["expired $term_fa null"],
		'(c) once the fence commits, "fa" expires');
	my $after = $expired->{seen_at} - $committed_at;
	ok($after < 2,
		sprintf('(c) "expired" of "fa" came less than 2 s after the commit (%.3f s)',
			$after));
	is($expired->{sender}, $worker, '(c) "expired" of "fa" was sent by the worker');
	push @report, sprintf('(c) "fa" expired %.3f s after the fence committed', $after);
}
$fencer->quit;

# ---- (d) stalled listeners ----

# One sits in an open transaction that read the lease table.
my $idle_tx = session($node, 'stalled-in-transaction');
$idle_tx->query_safe(
	'LISTEN leader_changed; BEGIN; SELECT count(*) FROM leader_lease;');

# The other's client never reads: enough traffic on the channel fills its
# socket, and its backend blocks writing to it.
my $deaf = session($node, 'stalled-client');
$deaf->query_safe('LISTEN leader_changed');
ok(stop_client($deaf), '(d) SIGSTOP sent to a listener\'s psql client');
$node->safe_psql(
	'postgres', q{
	SELECT pg_notify('leader_changed',
	                 json_build_object('marker', 'filler-' || i, 'pad', repeat('x', 7000))::text)
	FROM generate_series(1, 200) AS i});
ok( $node->poll_query_until(
		'postgres',
		"SELECT wait_event = 'ClientWrite' FROM pg_stat_activity WHERE pid = $deaf->{backend_pid}"
	),
	'(d) the stalled listener\'s backend is blocked writing to its client');

is( $node->safe_psql(
		'postgres', "SELECT leader_try_acquire('gd', '500ms', 'pod-d')"),
	't', '(d) pod-d leads "gd" for 500 ms');
my $term_d = $node->safe_psql('postgres', "SELECT leader_term('gd', 'pod-d')");
{
	my ($expired, @events) = wait_expired('gd');
	is_deeply(
		summary(@events, events_so_far($node, 'postgres', $listener)),
		[ "acquired $term_d null", "expired $term_d null" ],
		'(d) the live listener gets acquired, then expired');
	is($expired->{sender}, $worker, '(d) "expired" was sent by the leader worker');
	check_on_time('(d) with stalled listeners', $expired);
}
is( $node->safe_psql(
		'postgres', qq{
		SELECT (SELECT state FROM pg_stat_activity WHERE pid = $idle_tx->{backend_pid}),
		       (SELECT wait_event FROM pg_stat_activity WHERE pid = $deaf->{backend_pid})}
	),
	'idle in transaction|ClientWrite',
	'(d) both listeners were still stalled meanwhile');

ok(continue_client($deaf), '(d) SIGCONT sent to the stalled client');
$deaf->quit;
$idle_tx->query_safe('COMMIT');
$idle_tx->quit;

diag($_) foreach @report;

$listener->quit;
$node->stop;
done_testing();
