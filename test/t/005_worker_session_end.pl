# With the library preloaded, the background worker records the end of a
# session-bound leadership as soon as its session ends, with no call of any
# client on the group: a listener hears "vacated" (old term, old pid) at
# once, sent by the worker, and a candidate already waiting in
# leader_acquire is woken by it (not by its periodic retry) and wins with the
# next term; the listener then hears its "acquired".  Whatever ends the
# session: the client process killed, pg_terminate_backend() of its backend,
# DISCARD ALL or pg_advisory_unlock_all() in the session.
#
# And with many candidates waiting on one group, every end of a leadership
# lets exactly one of them win; the others go on waiting, until each has led
# once.
#
# Without preloading, the lazy detection of the same ends is 001's subject.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use LeaderTest;
use List::Util qw(max);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = PostgreSQL::Test::Cluster->new('worker_session_end');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'leader'");
$node->append_conf('postgresql.conf', 'max_connections = 30');
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION leader');

my $worker = worker_pid($node, 'postgres');
ok($worker, 'the leader worker of database postgres runs');

# The default TTL is what the end of a session must not have to wait for.
is($node->safe_psql('postgres', "LOAD 'leader'; SHOW leader.default_ttl"),
	'15s', 'leases last 15 s by default');

my $listener = listen_leader_changed($node, 'postgres');

# How long to wait for an event that should come at once: well under the TTL.
my $EVENT_TIMEOUT = 10;

# Measured latencies, reported at the end.
my @report;

# ---- one scenario per way a session can end ----

# $group's leader is a session of its own; a candidate waits for the group in
# leader_acquire; &$end($leader_session) ends the leader's session or its
# leadership, and nothing else touches the group.
sub session_end_scenario
{
	my ($group, $how, $end) = @_;

	my $leader = session($node, "leader-$group");
	my $old_pid = $leader->{backend_pid};
	is($leader->query_safe("SELECT leader_try_acquire('$group')"),
		't', "$how: the first session leads \"$group\"");
	my $old_term = $leader->query_safe("SELECT leader_term('$group')");
	is_deeply(summary(events_so_far($node, 'postgres', $listener)),
		["acquired $old_term $old_pid"], "$how: the first leader's acquired event");

	my $candidate = session($node, "candidate-$group");
	my $new_pid = $candidate->{backend_pid};
	my $tag = start_query($candidate, "SELECT leader_acquire('$group', '30s');");
	wait_until_waiting($node, $candidate, $how);
	ok(!query_done($candidate, $tag), "$how: the candidate waits while the leader lives");
	# The candidate's first attempt was at the start of its statement; left
	# alone, it would look again 1 s later (its periodic safety retry).
	my $waiting_since = $node->safe_psql('postgres',
		"SELECT extract(epoch FROM query_start) FROM pg_stat_activity WHERE pid = $new_pid"
	);

	my $ended_at = time;
	$end->($leader, $old_pid);

	# The listener hears "vacated", from the worker.
	my @events = wait_for_events($listener,
		sub { grep { $_->{event} eq 'vacated' } @_ }, $EVENT_TIMEOUT);
	my ($vacated) = grep { $_->{event} eq 'vacated' } @events;
	my $vacated_after = $vacated->{seen_at} - $ended_at;
	ok($vacated_after < 5,
		sprintf('%s: "vacated" arrives well before the 15 s TTL (%.3f s)',
			$how, $vacated_after));
	is($vacated->{sender}, $worker,
		"$how: \"vacated\" was sent by the leader worker, not by a client call");

	# The candidate wins, woken by the end of the lease.
	my ($out, $err) = finish_query($candidate, $tag);
	my $returned_after = time - $ended_at;
	is($out, 't', "$how: the waiting leader_acquire returns true");
	is($err, '', "$how: without an error");
	ok($returned_after < 5,
		sprintf('%s: it returns well before the 15 s TTL (%.3f s)',
			$how, $returned_after));
	my ($acquired_at, $term, $pid) = split /\|/,
	  $node->safe_psql('postgres',
		"SELECT extract(epoch FROM acquired_at), term, pid FROM leader_lease WHERE group_name = '$group'"
	  );
	is($term, $old_term + 1, "$how: the candidate leads with the next term");
	is($pid, $new_pid, "$how: the lease is the candidate's");
	ok( $acquired_at - $waiting_since < 1,
		sprintf(
			'%s: the candidate was woken before its periodic retry (won %.3f s after it began to wait)',
			$how, $acquired_at - $waiting_since));

	# The listener then hears "acquired", and nothing else.
	push @events,
	  wait_for_events($listener,
		sub { grep { $_->{event} eq 'acquired' } @events, @_ },
		$EVENT_TIMEOUT);
	push @events, events_so_far($node, 'postgres', $listener);
	is_deeply(
		summary(@events),
		[ "vacated $old_term $old_pid", "acquired $term $new_pid" ],
		"$how: events are vacated (old term and pid), then acquired (next term)");
	is($events[1]{sender}, $new_pid, "$how: \"acquired\" was sent by the candidate");

	push @report,
	  sprintf('%s: vacated after %.3f s, candidate won %.3f s after the end',
		$how, $vacated_after, $acquired_at - $ended_at);

	is($candidate->query_safe("SELECT leader_release('$group')"),
		't', "$how: the candidate releases");
	is_deeply(summary(events_so_far($node, 'postgres', $listener)),
		["released $term $new_pid"], "$how: its released event");
	$candidate->quit;
	return;
}

session_end_scenario(
	'g_kill',
	'client killed',
	sub {
		my ($leader, $pid) = @_;
		ok(kill_client($leader), 'SIGKILL sent to the leader\'s psql client');
	});

session_end_scenario(
	'g_terminate',
	'pg_terminate_backend',
	sub {
		my ($leader, $pid) = @_;
		is($node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)"),
			't', 'pg_terminate_backend() of the leader\'s backend');
		eval { $leader->quit; };
	});

session_end_scenario(
	'g_discard',
	'DISCARD ALL',
	sub {
		my ($leader, $pid) = @_;
		$leader->query_safe('DISCARD ALL');
		is($node->safe_psql('postgres',
				"SELECT count(*) FROM pg_stat_activity WHERE pid = $pid"),
			'1', 'the session that ran DISCARD ALL is still connected');
		$leader->quit;
	});

session_end_scenario(
	'g_unlock',
	'pg_advisory_unlock_all',
	sub {
		my ($leader, $pid) = @_;
		$leader->query_safe('SELECT pg_advisory_unlock_all()');
		is($leader->query_safe("SELECT leader_is_leader('g_unlock')"),
			'f', 'after pg_advisory_unlock_all() the session no longer leads');
		$leader->quit;
	});

# ---- many candidates: each end of a leadership lets exactly one win ----

my $n = 10;
my $first = session($node, 'first');
is($first->query_safe("SELECT leader_try_acquire('many')"),
	't', 'a first session leads "many"');
my $term = $first->query_safe("SELECT leader_term('many')");
my @expected = ("acquired $term $first->{backend_pid}");

my %waiting;    # backend pid => [session, tag]
foreach my $i (1 .. $n)
{
	my $s = session($node, "waiter-$i");
	$waiting{ $s->{backend_pid} } =
	  [ $s, start_query($s, "SELECT leader_acquire('many', '30s');") ];
}

ok( $node->poll_query_until(
		'postgres', sprintf(
			q{SELECT count(*) = %d FROM pg_stat_activity
			  WHERE pid IN (%s) AND state = 'active' AND wait_event_type = 'Extension'},
			$n, join(', ', keys %waiting))),
	"all $n candidates sleep in leader_acquire");

my ($current, $current_pid) = ($first, $first->{backend_pid});
my @handovers;
foreach my $round (1 .. $n)
{
	my $released_at = time;
	is($current->query_safe("SELECT leader_release('many')"),
		't', "round $round: the leader releases");
	push @expected, "released $term $current_pid";

	# Someone among the waiting wins...
	my $waiting_list = join(', ', keys %waiting);
	ok( $node->poll_query_until(
			'postgres',
			"SELECT pid IN ($waiting_list) FROM leader_lease WHERE group_name = 'many' AND holder IS NOT NULL"
		),
		"round $round: a waiting candidate takes over");
	my ($winner, $new_term, $acquired_at) = split /\|/,
	  $node->safe_psql('postgres',
		"SELECT pid, term, extract(epoch FROM acquired_at) FROM leader_lease WHERE group_name = 'many'"
	  );
	is($new_term, $term + 1, "round $round: with the next term");
	# Woken waiters that lose go back to sleep for 1 s at most (their
	# periodic retry); a handover sooner than that was made by the wakeup.
	push @handovers, $acquired_at - $released_at;
	ok( $handovers[-1] < 1,
		sprintf(
			'round %d: the release woke the waiters: one won before their 1 s periodic retry (%.3f s)',
			$round, $handovers[-1]));
	my ($s, $tag) = @{ delete $waiting{$winner} };
	my ($out, $err) = finish_query($s, $tag);
	is($out, 't', "round $round: the winner's leader_acquire returns true");

	# ... and every other one goes back to sleep without winning.
	my @others = keys %waiting;
	ok( $node->poll_query_until(
			'postgres',
			sprintf(
				q{SELECT count(*) = %d FROM pg_stat_activity
				  WHERE pid IN (%s) AND state = 'active' AND wait_event_type = 'Extension'},
				scalar(@others), join(', ', @others, 0))),
		sprintf('round %d: the %d others sleep in leader_acquire again',
			$round, scalar(@others)));
	is(scalar(grep { query_done(@$_) } values %waiting),
		0, "round $round: none of the others returned");
	is( $node->safe_psql(
			'postgres', qq{
			SELECT pid, term, state FROM leader_status WHERE group_name = 'many'}),
		"$winner|$new_term|held",
		"round $round: leader_status shows the winner leading \"many\" with the new term");
	is($s->query_safe("SELECT leader_is_leader('many'), leader_term('many')"),
		"t|$new_term", "round $round: the winner knows it leads");

	push @expected, "acquired $new_term $winner";
	$current->quit;
	($current, $current_pid, $term) = ($s, $winner, $new_term);
}
is(scalar(keys %waiting), 0, "each of the $n candidates has led once");
is($current->query_safe("SELECT leader_release('many')"),
	't', 'the last one releases');
push @expected, "released $term $current_pid";
is_deeply(summary(events_so_far($node, 'postgres', $listener)),
	\@expected,
	'events: one acquired and one released per term, terms in order');
my @sorted = sort { $a <=> $b } @handovers;
push @report,
  sprintf('%d releases with %d..1 waiting: handover median %.3f s, max %.3f s',
	$n, $n, $sorted[ $#sorted / 2 ], max(@handovers));

diag($_) foreach @report;

$current->quit;
$listener->quit;
$node->stop;
done_testing();
