# Invariant 5: a session-bound leadership ends as soon as its session ends,
# whatever ends it: the client process killed, pg_terminate_backend() of its
# backend, DISCARD ALL or pg_advisory_unlock_all() in the session.  Another
# session then wins the group at once (not after the TTL) with the next term,
# and a listener sees "vacated" for the old term, then "acquired" for the new.
#
# Without a background worker the end is noticed by the next changing call on
# the group, which sends "vacated" before its own "acquired".
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use LeaderTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = PostgreSQL::Test::Cluster->new('session_end');
$node->init;
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION leader');

# The default TTL is what a takeover must not have to wait for.
is($node->safe_psql('postgres', "LOAD 'leader'; SHOW leader.default_ttl"),
	'15s', 'leases last 15 s by default');

# ---- reading leader_changed through a background psql ----

my $listener = listen_leader_changed($node, 'postgres');

# ---- one scenario per way a session can end ----

# A session-bound leader of $group in a psql of its own, still connected.
sub start_leader
{
	my ($group, $appname) = @_;
	my $session = session($node, $appname);
	my $pid = $session->{backend_pid};

	is($session->query_safe("SELECT leader_try_acquire('$group')"),
		't', "$group: the first session leads");
	my $term = $session->query_safe("SELECT leader_term('$group')");
	like($term, qr/^\d+$/, "$group: the leader has a term");

	my @events = events_so_far($node, 'postgres', $listener);
	is_deeply(summary(@events), ["acquired $term $pid"],
		"$group: one acquired event for the first leadership");
	is($events[0]{holder}, "$appname (pid $pid)",
		"$group: the holder is shown as application_name and pid");
	is($events[0]{kind}, 'session', "$group: the holder is session-bound");

	# While the session lives, nobody else can take the group.
	is( $node->safe_psql('postgres', "SELECT leader_try_acquire('$group')"),
		'f', "$group: another session cannot take it while the leader lives");
	is(lease_status($node, 'postgres', $group),
		'held|t',
		"$group: leader_status shows the lease held by a live session");

	return ($session, $pid, $term);
}

# After the session's leadership has ended at $ended_at: another session
# wins at once with the next term, and the events are vacated + acquired.
sub check_takeover
{
	my ($group, $old_pid, $old_term, $ended_at) = @_;

	is(lease_status($node, 'postgres', $group),
		'vacant|f',
		"$group: leader_status shows the lease vacant, its session not alive");
	is($node->safe_psql('postgres', "SELECT leader_current('$group')"),
		'', "$group: leader_current is NULL once the session has ended");

	my ($won, $term, $pid) = split /\n/,
	  $node->safe_psql(
		'postgres', qq{
		SELECT leader_try_acquire('$group');
		SELECT leader_term('$group');
		SELECT pg_backend_pid();
	});
	my $elapsed = time - $ended_at;
	is($won, 't', "$group: another session's leader_try_acquire wins");
	ok($elapsed < 5,
		"$group: the takeover came well before the 15 s TTL (${elapsed}s)");
	is($term, $old_term + 1, "$group: the new leadership has the next term");

	my @events = events_so_far($node, 'postgres', $listener);
	is_deeply(
		summary(@events),
		[ "vacated $old_term $old_pid", "acquired $term $pid" ],
		"$group: events are vacated (old term and pid), then acquired (new term)"
	);
}

# 1. The leader's client process is killed (SIGKILL): its backend sees the
# connection close and exits.
{
	my ($session, $pid, $term) = start_leader('g', 'leader-killed');
	my $client_pid = client_pid($session);
	ok($client_pid && $client_pid != $pid,
		'the psql client process is known and is not the backend');
	my $ended_at = time;
	ok(kill_client($session), 'SIGKILL sent to the leader\'s psql client');
	ok(backend_gone($node, $pid), "backend $pid has exited");
	check_takeover('g', $pid, $term, $ended_at);
}

# 2. pg_terminate_backend() of the leader's backend.
{
	my ($session, $pid, $term) = start_leader('g_terminated', 'leader-terminated');
	my $ended_at = time;
	is($node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)"),
		't', 'pg_terminate_backend() of the leader\'s backend');
	ok(backend_gone($node, $pid), "backend $pid has exited");
	eval { $session->quit; };
	check_takeover('g_terminated', $pid, $term, $ended_at);
}

# 3. DISCARD ALL in the leader's session (what a pool runs between clients):
# the session lives on, but its leadership is over.
{
	my ($session, $pid, $term) = start_leader('g_discard', 'leader-discard');
	my $ended_at = time;
	$session->query_safe('DISCARD ALL');
	is($session->query_safe("SELECT leader_is_leader('g_discard')"),
		'f', 'after DISCARD ALL the session no longer leads');
	is($session->query_safe("SELECT leader_term('g_discard')"),
		'', 'after DISCARD ALL the session has no term');
	check_takeover('g_discard', $pid, $term, $ended_at);
	is($node->safe_psql('postgres',
			"SELECT count(*) FROM pg_stat_activity WHERE pid = $pid"),
		'1', 'the discarded session is still connected');
	$session->quit;
}

# 4. pg_advisory_unlock_all() in the leader's session.
{
	my ($session, $pid, $term) = start_leader('g_unlock', 'leader-unlock');
	my $ended_at = time;
	$session->query_safe('SELECT pg_advisory_unlock_all()');
	is($session->query_safe("SELECT leader_is_leader('g_unlock')"),
		'f', 'after pg_advisory_unlock_all() the session no longer leads');
	check_takeover('g_unlock', $pid, $term, $ended_at);
	$session->quit;
}

$listener->quit;
$node->stop;
done_testing();
