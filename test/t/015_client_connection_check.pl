# client_connection_check_interval and session-bound leaders whose client
# dies while their backend is busy.  A backend that runs a statement does not
# read its socket, so the FIN sent by the kernel of a killed client goes
# unnoticed until the statement ends; meanwhile the session lives, and with
# it the leadership.
#   (a) with client_connection_check_interval = 250ms, asked for by the
#       connection itself (options in the connection string, here through
#       PGOPTIONS), the backend running pg_sleep(600) notices the closed
#       connection within about a second and exits: a listener hears
#       "vacated", and a candidate waiting in leader_acquire takes over with
#       the next term, long before the 300 s TTL;
#   (b) with the default (0, no check), the same killed client leaves the
#       lease held and its session alive some seconds later (a bounded,
#       commented wait); pg_terminate_backend() then ends it at once.
# What bounds failover when the client's whole host disappears without a
# FIN (TCP keepalives, tcp_user_timeout) needs root to simulate, and is
# test/liveness/silent-host.sh's subject.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use LeaderTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = preloaded_node('client_connection_check');
my $worker = worker_pid($node, 'postgres');
ok($worker, 'the leader worker of database postgres runs');

my $listener = listen_leader_changed($node, 'postgres');

# The lease is long, so that nothing but the end of the session can end it
# within the test.
my $TTL = '300 s';
# How long to wait for an event that should come at once.
my $EVENT_TIMEOUT = 10;

my @report;

# Starts a leader of $group in a session of its own (its connection gets the
# extra options $options when given; it must then show
# client_connection_check_interval as $interval) and a candidate waiting for
# the group; the leader then runs pg_sleep(600).  Returns (leader,
# candidate, candidate's tag, leader's term).
sub busy_leader_and_candidate
{
	my ($group, $how, $interval, $options) = @_;

	my $leader;
	{
		my %env = defined $options ? (PGOPTIONS => $options) : ();
		local @ENV{ keys %env } = values %env;
		$leader = session($node, "leader-$group");
	}
	is($leader->query_safe('SHOW client_connection_check_interval'),
		$interval, "$how: the leader's session has client_connection_check_interval = $interval");

	is($leader->query_safe("SELECT leader_try_acquire('$group', '$TTL')"),
		't', "$how: the leader leads \"$group\"");
	my $term = $leader->query_safe("SELECT leader_term('$group')");
	is_deeply(summary(events_so_far($node, 'postgres', $listener)),
		["acquired $term $leader->{backend_pid}"],
		"$how: its acquired event");

	my $candidate = session($node, "candidate-$group");
	my $tag = start_query($candidate,
		"SELECT leader_acquire('$group', '120 s');");
	wait_until_waiting($node, $candidate, $how);

	start_query($leader, 'SELECT pg_sleep(600);');
	ok( $node->poll_query_until(
			'postgres', qq{
			SELECT state = 'active' AND wait_event = 'PgSleep'
			FROM pg_stat_activity WHERE pid = $leader->{backend_pid}}),
		"$how: the leader's backend is busy in pg_sleep(600)");
	return ($leader, $candidate, $tag, $term);
}

# The candidate's leader_acquire returns true and it leads with term $term.
sub candidate_takes_over
{
	my ($group, $how, $candidate, $tag, $term) = @_;
	my ($out, $err) = finish_query($candidate, $tag);
	is($out, 't', "$how: the waiting candidate's leader_acquire returns true");
	is( $node->safe_psql(
			'postgres',
			"SELECT pid, term, state FROM leader_status WHERE group_name = '$group'"
		),
		"$candidate->{backend_pid}|$term|held",
		"$how: the candidate leads with the next term");
	is($candidate->query_safe("SELECT leader_release('$group')"),
		't', "$how: the candidate releases");
	is_deeply(
		summary(events_so_far($node, 'postgres', $listener)),
		["released $term $candidate->{backend_pid}"],
		"$how: the candidate's released event, and no other");
	$candidate->quit;
	return;
}

# ---- (a) client_connection_check_interval = 250ms ----

{
	my $how = 'check every 250ms';
	is($node->safe_psql('postgres', 'SHOW client_connection_check_interval'),
		'0', 'the server\'s default is 0 (no check)');
	my ($leader, $candidate, $tag, $term) =
	  busy_leader_and_candidate('g_check', $how, '250ms',
		'-c client_connection_check_interval=250ms');
	my $pid = $leader->{backend_pid};

	my $killed_at = time;
	ok(kill_client($leader), "$how: SIGKILL sent to the leader's psql client");

	my $takeover = sub { grep { $_->{event} eq 'acquired' } @_ };
	my @events = eval { wait_for_events($listener, $takeover, $EVENT_TIMEOUT) };
	my $after = @events ? $events[0]{seen_at} - $killed_at : undef;
	ok( defined $after && $after < 2,
		sprintf('%s: the backend noticed the closed connection and the lease '
			  . 'was vacated within about a second (%s)',
			$how,
			defined $after
			? sprintf('%.3f s', $after)
			: "nothing in $EVENT_TIMEOUT s"));
	if (!@events)
	{
		# Failed: end the session, so that the checks below can go on.
		$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
		@events = wait_for_events($listener, $takeover, $EVENT_TIMEOUT);
	}
	is_deeply(
		summary(@events),
		[
			"vacated $term $pid",
			'acquired ' . ($term + 1) . " $candidate->{backend_pid}"
		],
		"$how: \"vacated\" for the busy leader's term and pid, then the candidate's \"acquired\""
	);
	is($events[0]{sender}, $worker, "$how: \"vacated\" was sent by the leader worker");
	ok(backend_gone($node, $pid), "$how: the leader's backend has exited");
	ok($node->log_contains(qr/FATAL:  connection to client lost/),
		"$how: the server log says why: \"connection to client lost\"");
	candidate_takes_over('g_check', $how, $candidate, $tag, $term + 1);
	push @report,
	  defined $after
	  ? sprintf('%s: vacated %.3f s after the client was killed', $how, $after)
	  : "$how: not vacated";
}

# ---- (b) the default: no check while a statement runs ----

{
	my $how = 'no check (default)';
	my ($leader, $candidate, $tag, $term) =
	  busy_leader_and_candidate('g_nocheck', $how, '0');
	my $pid = $leader->{backend_pid};

	my $killed_at = time;
	ok(kill_client($leader), "$how: SIGKILL sent to the leader's psql client");

	# A negative check, so a bounded wait: with the check, (a) saw the end
	# within a fraction of a second; here nothing reads the socket until
	# pg_sleep(600) returns, and the TTL is 300 s.  5 s is many times what
	# (a) took, and far below both, so a lease still held then is held
	# because nobody noticed, not because noticing was slow.
	my $deadline = $killed_at + 5;
	my $held_throughout = 1;
	while (time < $deadline)
	{
		if (lease_status($node, 'postgres', 'g_nocheck',
				qw(pid state session_alive)) ne "$pid|held|t")
		{
			$held_throughout = 0;
			last;
		}
		usleep(200_000);
	}
	ok($held_throughout,
		"$how: 5 s after the client was killed the lease is still the killed client's, held, and its session alive"
	);
	is( $node->safe_psql(
			'postgres',
			"SELECT state, wait_event FROM pg_stat_activity WHERE pid = $pid"),
		'active|PgSleep',
		"$how: its backend still runs pg_sleep");
	ok(!query_done($candidate, $tag), "$how: the candidate still waits");
	is_deeply(summary(events_so_far($node, 'postgres', $listener)),
		[], "$how: no event was sent");

	# Clean up: ending the backend ends the leadership at once.
	my $terminated_at = time;
	is($node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)"),
		't', "$how: pg_terminate_backend() of the leader's backend");
	my @events = wait_for_events($listener,
		sub { grep { $_->{event} eq 'acquired' } @_ }, $EVENT_TIMEOUT);
	is_deeply(
		summary(@events),
		[
			"vacated $term $pid",
			'acquired ' . ($term + 1) . " $candidate->{backend_pid}"
		],
		"$how: then \"vacated\" for its term and pid, and the candidate's \"acquired\""
	);
	my $vacated = $events[0];
	candidate_takes_over('g_nocheck', $how, $candidate, $tag, $term + 1);
	push @report,
	  sprintf('%s: still held 5 s after the kill; vacated %.3f s after '
		  . 'pg_terminate_backend', $how, $vacated->{seen_at} - $terminated_at);
}

diag($_) foreach @report;

$listener->quit;
$node->stop;
done_testing();
