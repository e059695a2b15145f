# The background worker across a restart, a crash, a hot standby and the
# promotion of a standby that missed the old primary's last commits
# (shared_preload_libraries = 'leader'):
#   - after a clean restart and after a crash (immediate stop), named leases
#     are kept (holder, term, expires_at) until their TTL, which the worker
#     then ends as "expired"; session-bound leases of the previous server
#     start are ended by the worker as soon as it starts, with a "vacated"
#     event, without any call on the group; terms never go lower;
#   - on a hot standby no launcher and no worker run, and changing calls fail
#     with 25006;
#   - a standby that missed the old primary's last commits is promoted: the
#     launcher and a worker start there, the worker ends the old primary's
#     session-bound lease, and the first new leadership of every group gets
#     a term above every term the old primary handed out, including those
#     the standby never received (terms of timeline 2 start at 2^32).
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use LeaderTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', "shared_preload_libraries = 'leader'");
# A prepared transaction holds a lock on leader_lease across a restart (see
# hold_worker_at_start).
$primary->append_conf('postgresql.conf', 'max_prepared_transactions = 2');
$primary->start;
$primary->safe_psql('postgres', 'CREATE DATABASE app');
$primary->safe_psql('app', 'CREATE EXTENSION leader');

# ---- helpers ----

# The highest term seen so far per group: every later leadership must beat it.
my %max_term;

# In database app of $node, a fresh session takes $group for $ttl (for
# $holder, when given; else session-bound, ending with that session) and
# gets a term above every earlier one: two assertions, named after $what.
# Returns the term.
sub take
{
	my ($node, $group, $holder, $ttl, $what) = @_;
	my $args = "'$group', '$ttl'" . (defined $holder ? ", '$holder'" : '');
	my $term_args = "'$group'" . (defined $holder ? ", '$holder'" : '');
	my ($won, $term) = split /\n/,
	  $node->safe_psql(
		'app', qq{
		SELECT leader_try_acquire($args);
		SELECT leader_term($term_args);
	});
	is($won, 't', "$group: $what leads");
	see_term(\%max_term, $group, $term, $what);
	return $term;
}

# Whether a leader launcher or worker runs on $node (query text).
my $leader_processes = q{
	SELECT count(*) FROM pg_stat_activity
	WHERE backend_type IN ('leader launcher', 'leader worker')};

# Wait until $node runs a leader launcher and a worker in database app.
sub wait_for_leader_processes
{
	my ($node) = @_;
	return $node->poll_query_until(
		'postgres', qq{
		SELECT count(*) FILTER (WHERE backend_type = 'leader launcher') = 1
		   AND count(*) FILTER (WHERE backend_type = 'leader worker' AND datname = 'app') = 1
		FROM pg_stat_activity});
}

# Wait until the worker of $node has recorded the end of $group's lease
# (the row's holder becomes NULL only when an end is recorded; reading the
# row records nothing).
sub wait_until_ended
{
	my ($node, $group) = @_;
	return $node->poll_query_until('app',
		"SELECT holder IS NULL FROM leader_lease WHERE group_name = '$group'");
}

# The worker starts at once after a (re)start and would end the previous
# run's session-bound leases before any client could LISTEN (LISTEN skips
# notifications committed before it).  To hear its "vacated" events, a
# prepared transaction (which survives restarts and crashes) locks
# leader_lease before the stop: the new worker then waits for that lock on
# its first look at the leases, a listener connects, and
# release_worker() lets the worker go on.
sub hold_worker_at_start
{
	$primary->safe_psql(
		'app', q{
		BEGIN;
		LOCK TABLE leader_lease IN ACCESS EXCLUSIVE MODE;
		PREPARE TRANSACTION 'hold_worker';
	});
}

sub release_worker
{
	$primary->safe_psql('app', "COMMIT PREPARED 'hold_worker'");
}

# ---- a clean restart and a crash ----

# Several terms go by first, so that a term reset to 0 or 1 cannot pass for
# an increase.
foreach my $round (1 .. 3)
{
	is( $primary->safe_psql(
			'app', qq{
			SELECT leader_try_acquire('named', '1 hour', 'pod-1');
			SELECT leader_release('named', 'pod-1');
			SELECT leader_try_acquire('sb');
			SELECT leader_try_acquire('short', '1 hour', 'pod-s');
			SELECT leader_release('short', 'pod-s');
		}),
		"t\nt\nt\nt\nt",
		"round $round: terms go by");
}
%max_term = split /[|\n]/,
  $primary->safe_psql('app', 'SELECT group_name, term FROM leader_lease');
take($primary, 'named', 'pod-1', '1 hour', "'pod-1'");

# Stops and starts the primary with $restart; checks what the worker does.
sub restart_scenario
{
	my ($how, $restart) = @_;

	# A session-bound leader still connected when the server goes down (for
	# an hour: only the worker's check of the sessions can end it during
	# this test), a named lease for an hour, and a named lease that ends
	# soon after.
	my $sb_session = session($primary, "leader-$how", 'app');
	is($sb_session->query_safe("SELECT leader_try_acquire('sb', '1 hour')"),
		't', "$how: a connected session leads \"sb\"");
	my $sb_term = $sb_session->query_safe("SELECT leader_term('sb')");
	see_term(\%max_term, 'sb', $sb_term, "$how: the connected session");
	my $sb_pid = $sb_session->{backend_pid};
	my $short_term = take($primary, 'short', 'pod-s', '6s', "$how: 'pod-s'");
	my $leases_before = $primary->safe_psql('app',
		"SELECT group_name, holder, term, expires_at FROM leader_lease WHERE group_name IN ('named', 'short') ORDER BY 1"
	);
	my $short_expires_at = $primary->safe_psql('app',
		"SELECT expires_at FROM leader_lease WHERE group_name = 'short'");

	hold_worker_at_start();
	$restart->();
	eval { $sb_session->quit; };    # its backend ended with the server

	ok( $primary->poll_query_until(
			'postgres', q{
			SELECT wait_event_type = 'Lock' FROM pg_stat_activity
			WHERE backend_type = 'leader worker' AND datname = 'app'}),
		"$how: at start-up the worker looks at the leases by itself");
	my $listener = listen_leader_changed($primary, 'app');
	release_worker();

	ok(wait_until_ended($primary, 'sb'),
		"$how: the worker records the end of the previous session-bound lease");
	my @events = events_so_far($primary, 'app', $listener);
	is_deeply(summary(grep { $_->{group} eq 'sb' } @events),
		["vacated $sb_term $sb_pid"],
		"$how: a listener connected after the start hears \"sb\" vacated (old term and pid)");
	is(lease_status($primary, 'app', 'sb', qw(state term)),
		"vacant|$sb_term", "$how: \"sb\" is vacant with its last term");

	# Named leases are kept as they were: holder, term and expiry.
	is( $primary->safe_psql('app',
			"SELECT group_name, holder, term, expires_at FROM leader_lease WHERE group_name IN ('named', 'short') ORDER BY 1"
		),
		$leases_before,
		"$how: the named leases keep holder, term and expires_at");
	is( $primary->safe_psql('app',
			"SELECT leader_current('short'), clock_timestamp() < '$short_expires_at'::timestamptz"),
		'pod-s|t',
		"$how: 'pod-s' still leads \"short\" before its TTL");
	is(scalar(grep { $_->{group} =~ /^(named|short)$/ } @events),
		0, "$how: no event for the named leases so far");

	# The short named lease ends at its TTL, recorded by the worker.
	ok(wait_until_ended($primary, 'short'),
		"$how: the worker records the end of \"short\"");
	is( $primary->safe_psql('app',
			"SELECT clock_timestamp() >= '$short_expires_at'::timestamptz"),
		't', "$how: \"short\" did not end before its expires_at");
	is_deeply(
		summary(grep { $_->{group} eq 'short' } events_so_far($primary, 'app', $listener)),
		["expired $short_term null"],
		"$how: the listener hears \"short\" expired with its term");
	$listener->quit;

	# Terms never go lower; the named holder renews with its term.
	take($primary, 'sb', undef, '15s', "$how: a new session");
	take($primary, 'short', 'pod-t', '1 hour', "$how: 'pod-t'");
	is( $primary->safe_psql('app',
			"SELECT leader_try_acquire('named', '1 hour', 'pod-1'), leader_term('named', 'pod-1')"
		),
		"t|$max_term{named}",
		"$how: 'pod-1' renews \"named\" with the same term");
	$primary->safe_psql('app', "SELECT leader_release('short', 'pod-t')");
}

restart_scenario('restart', sub { $primary->restart; });
restart_scenario('crash', sub { $primary->stop('immediate'); $primary->start; });

# ---- a hot standby runs no launcher and no worker ----

$primary->backup('backup');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'backup', has_streaming => 1);
$standby->start;

# On the primary: a session-bound leader of "sb" for an hour (a session of
# the primary, still connected), and 'pod-1' leading "named"; both reach the
# standby.
my $sb_session = session($primary, 'old-primary-leader', 'app');
is($sb_session->query_safe("SELECT leader_try_acquire('sb', '1 hour')"),
	't', 'a session of the primary leads "sb"');
my $sb_term = $sb_session->query_safe("SELECT leader_term('sb')");
see_term(\%max_term, 'sb', $sb_term, 'the session of the primary');
$primary->wait_for_catchup($standby);
is( $standby->safe_psql('app',
		"SELECT group_name, holder IS NOT NULL, term FROM leader_lease WHERE group_name IN ('named', 'sb') ORDER BY 1"
	),
	"named|t|$max_term{named}\nsb|t|$sb_term",
	'the standby has replayed both leases');

# The same query sees the primary's launcher and worker, and, watched for
# 2 s (an absence cannot be waited for), never sees one on the standby.
ok($primary->safe_psql('postgres', $leader_processes) >= 2,
	'the primary runs a launcher and a worker');
my ($seen, $deadline) = (0, time + 2);
while (time < $deadline)
{
	$seen ||= $standby->safe_psql('postgres', $leader_processes);
	usleep(100_000);
}
is($seen, 0, 'the hot standby runs no leader launcher and no leader worker');

my ($ret, $stdout, $stderr) = $standby->psql(
	'app', "\\set VERBOSITY verbose\nSELECT leader_try_acquire('sb');",
	on_error_stop => 0);
like($stderr, qr/ERROR:  25006: /,
	'a changing call on the standby fails with 25006');

# ---- the standby misses the old primary's last commits ----

$standby->stop;
is($sb_session->query_safe("SELECT leader_release('sb')"),
	't', 'the session of the primary releases "sb"');
foreach my $round (1 .. 3)
{
	take($primary, 'sb', undef, '15s', "old primary, round $round: a session");
	is($primary->safe_psql('app', "SELECT leader_release('named', 'pod-$round')"),
		't', "old primary, round $round: 'pod-$round' releases \"named\"");
	take($primary, 'named', 'pod-' . ($round + 1),
		'1 hour', "old primary, round $round: 'pod-" . ($round + 1) . "'");
	take($primary, 'fresh', 'pod-f', '1 hour', "old primary, round $round: 'pod-f'");
	$primary->safe_psql('app', "SELECT leader_release('fresh', 'pod-f')");
}
# The old primary goes down with a session-bound leader connected.
is($sb_session->query_safe("SELECT leader_try_acquire('sb', '1 hour')"),
	't', 'a session of the old primary leads "sb" when it goes down');
see_term(\%max_term, 'sb', $sb_session->query_safe("SELECT leader_term('sb')"),
	'the last leader on the old primary');
is( $primary->safe_psql('app',
		'SELECT group_name, term FROM leader_lease ORDER BY 1'),
	join("\n", map { "$_|$max_term{$_}" } sort keys %max_term),
	'the old primary\'s last terms are the highest seen');
$primary->stop('immediate');
eval { $sb_session->quit; };

$standby->start;
is($standby->safe_psql('app', 'SELECT pg_is_in_recovery()'),
	't', 'the standby is back, still in recovery');
is( $standby->safe_psql('app',
		'SELECT group_name, term FROM leader_lease ORDER BY 1'),
	"named|" . ($max_term{named} - 3) . "\nsb|$sb_term\nshort|$max_term{short}",
	'the standby missed the old primary\'s last terms (and the group "fresh")');

# ---- promotion ----

$standby->promote;
ok($standby->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()'),
	'the standby is promoted');
ok(wait_for_leader_processes($standby),
	'after promotion a leader launcher and a worker for app run');
ok(wait_until_ended($standby, 'sb'),
	'the worker records the end of the old primary\'s session-bound lease');
is(lease_status($standby, 'app', 'sb', qw(state term)),
	"vacant|$sb_term", '"sb" is vacant, with the last term the standby knew');
is($standby->safe_psql('app', "SELECT leader_current('named')"),
	'pod-1', 'the named lease the standby knew is kept');

# Terms of timeline 2 start at 2^32, above anything of timeline 1.
my $timeline2_floor = 4294967296;
my $term = take($standby, 'sb', undef, '15s', 'promoted: a new session');
ok($term >= $timeline2_floor, "promoted: \"sb\" has a term of timeline 2 ($term)");
is($standby->safe_psql('app', "SELECT leader_force_release('named')"),
	't', 'promoted: the named lease is force-released');
$term = take($standby, 'named', 'pod-9', '1 hour', "promoted: 'pod-9'");
ok($term >= $timeline2_floor, "promoted: \"named\" has a term of timeline 2 ($term)");
$term = take($standby, 'fresh', 'pod-9', '1 hour', "promoted: 'pod-9'");
ok($term >= $timeline2_floor, "promoted: \"fresh\" has a term of timeline 2 ($term)");

# The worker serves the promoted server: a short lease expires by itself.
my $listener = listen_leader_changed($standby, 'app');
my $expiring = take($standby, 'expiring', 'pod-e', '300ms', "promoted: 'pod-e'");
ok(wait_until_ended($standby, 'expiring'),
	'promoted: the worker records the end of a 300 ms lease');
is_deeply(
	summary(grep { $_->{group} eq 'expiring' } events_so_far($standby, 'app', $listener)),
	[ "acquired $expiring null", "expired $expiring null" ],
	'promoted: the listener hears it acquired, then expired');
$listener->quit;

$standby->stop;
done_testing();
