# Invariant 8 (leases of a previous server start that were session-bound are
# void after restart; named leases survive) and invariant 2 (terms never go
# backwards) across a clean restart, a crash (immediate stop) and a
# pg_dump/pg_restore into a fresh database.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use LeaderTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('restart');
$node->init;
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE app');
$node->safe_psql('app', 'CREATE EXTENSION leader');

# The highest term seen so far per group: every later leadership must beat it.
my %max_term;

# A fresh session of database $db takes $group, for $holder for an hour
# when $holder is given, and gets a term above every earlier one: two
# assertions, named $won_name and after $what.
sub take_group
{
	my ($node, $db, $group, $holder, $won_name, $what) = @_;
	my ($acquire_args, $term_args) =
	  defined $holder
	  ? ("'$group', '1 hour', '$holder'", "'$group', '$holder'")
	  : ("'$group'", "'$group'");
	my ($won, $term) = split /\n/,
	  $node->safe_psql(
		$db, qq{
		SELECT leader_try_acquire($acquire_args);
		SELECT leader_term($term_args);
	});
	is($won, 't', $won_name);
	see_term(\%max_term, $group, $term, $what);
}

# A session-bound leader of "sb" that stays connected, and a named lease of
# "named" held by 'pod-1' for an hour.  Several terms go by first so that a
# term reset to 0 or 1 cannot pass for an increase.
my $sb_session = session($node, undef, 'app');
foreach my $round (1 .. 3)
{
	is( $node->safe_psql(
			'app', qq{
			SELECT leader_try_acquire('named', '1 hour', 'pod-1');
			SELECT leader_release('named', 'pod-1');
			SELECT leader_try_acquire('sb');
		}),
		"t\nt\nt",
		"round $round: named and session-bound terms go by");
}
# A backend ends a little after its psql has gone: until the last round's has,
# its liveness lock still says that it leads "sb".
ok( $node->poll_query_until(
		'app', qq{
		SELECT count(*) = 0 FROM pg_stat_activity
		WHERE datname = 'app' AND backend_type = 'client backend'
		  AND pid NOT IN (pg_backend_pid(), $sb_session->{backend_pid})}),
	'the sessions of the rounds have ended');
is($sb_session->query_safe("SELECT leader_try_acquire('sb')"),
	't', 'a connected session leads "sb"');
my $sb_pid = $sb_session->{backend_pid};
my $sb_term = $sb_session->query_safe("SELECT leader_term('sb')");
see_term(\%max_term, 'sb', $sb_term, 'the connected session');
is($node->safe_psql('app', "SELECT leader_try_acquire('named', '1 hour', 'pod-1')"),
	't', "'pod-1' leads \"named\" for an hour");
my $named_term = $node->safe_psql('app', "SELECT leader_term('named', 'pod-1')");
see_term(\%max_term, 'named', $named_term, "'pod-1'");
is($named_term, 4, 'the named lease is on its fourth term');

# ---- clean restart ----

$node->restart;
eval { $sb_session->quit; };    # its backend was ended by the shutdown

is($node->safe_psql('app', "SELECT leader_current('named')"),
	'pod-1', 'after restart the named lease is still held by pod-1');
is($node->safe_psql('app', "SELECT leader_is_leader('named', 'pod-1')"),
	't', 'after restart leader_is_leader(named, pod-1) is true');
is($node->safe_psql('app', "SELECT leader_term('named', 'pod-1')"),
	$named_term, 'after restart the named lease keeps its term');
is(lease_status($node, 'app', 'named', 'state'),
	'held', 'after restart leader_status shows the named lease held');

is($node->safe_psql('app', "SELECT leader_current('sb')"),
	'', 'after restart the session-bound lease has no current holder');
is(lease_status($node, 'app', 'sb', qw(state session_alive term)),
	"vacant|f|$sb_term",
	'after restart leader_status shows the session-bound lease vacant, same term');

my $listener = listen_leader_changed($node, 'app');

my ($won, $term, $pid) = split /\n/,
  $node->safe_psql(
	'app', qq{
	SELECT leader_try_acquire('sb');
	SELECT leader_term('sb');
	SELECT pg_backend_pid();
});
is($won, 't', 'after restart another session takes "sb" at once');
is($term, $sb_term + 1, 'after restart "sb" gets the next term');
see_term(\%max_term, 'sb', $term, 'the first leader after restart');
is_deeply(
	summary(events_so_far($node, 'app', $listener)),
	[ "vacated $sb_term $sb_pid", "acquired $term $pid" ],
	'the void lease is reported vacated (old term and pid), then acquired');

is($node->safe_psql('app', "SELECT leader_try_acquire('named')"),
	'f', 'a session cannot take the named lease that survived the restart');

# ---- crash (immediate stop) ----

# A session-bound leader, still connected when the server crashes.
$sb_session = session($node, undef, 'app');
is($sb_session->query_safe("SELECT leader_try_acquire('sb')"),
	't', 'a connected session leads "sb" when the server crashes');
$sb_term = $sb_session->query_safe("SELECT leader_term('sb')");
is($sb_term, $term + 1, 'it has the next term');
see_term(\%max_term, 'sb', $sb_term, 'the leader at the time of the crash');
$listener->quit;

$node->stop('immediate');
$node->start;
eval { $sb_session->quit; };

is(lease_status($node, 'app', 'sb'),
	'vacant|f',
	'after a crash the session-bound lease is vacant');
is($node->safe_psql('app', "SELECT leader_current('named')"),
	'pod-1', 'after a crash the named lease is still held by pod-1');
is($node->safe_psql('app', "SELECT leader_term('named', 'pod-1')"),
	$named_term, 'after a crash the named lease keeps its term');

foreach my $round (1 .. 2)
{
	take_group($node, 'app', 'sb', undef,
		"after the crash a session takes \"sb\" (round $round)",
		"after the crash, round $round, \"sb\"");
}

is($node->safe_psql('app', "SELECT leader_force_release('named')"),
	't', 'the named lease is force-released after the crash');
take_group($node, 'app', 'named', 'pod-2',
	"'pod-2' takes \"named\" after the crash",
	"'pod-2' after the crash");

# ---- pg_dump and pg_restore into a fresh database ----

# The dump is taken while a session-bound leader of "sb" is connected to the
# source database: in the restored database that lease belongs to no session.
$sb_session = session($node, undef, 'app');
is($sb_session->query_safe("SELECT leader_try_acquire('sb')"),
	't', 'a connected session leads "sb" while the dump is taken');
$sb_term = $sb_session->query_safe("SELECT leader_term('sb')");
see_term(\%max_term, 'sb', $sb_term, 'the leader at the time of the dump');

my $dump = PostgreSQL::Test::Utils::tempdir() . '/app.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', 'app' ],
	'pg_dump of the database');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok([ 'pg_restore', '--exit-on-error', '-d', 'restored', $dump ],
	'pg_restore into a fresh database');

is( $node->safe_psql('restored',
		'SELECT group_name, term FROM leader_lease ORDER BY group_name'),
	"named|$max_term{named}\nsb|$max_term{sb}",
	'the restored lease table keeps every group\'s last term');
is($node->safe_psql('restored', "SELECT leader_current('named')"),
	'pod-2', 'the restored named lease is held by pod-2');

is(lease_status($node, 'restored', 'sb'),
	'vacant|f',
	'in the restored database the session-bound lease of the source is void');
take_group($node, 'restored', 'sb', undef,
	'in the restored database a session takes "sb" at once',
	'the first leader of "sb" in the restored database');

is($node->safe_psql('restored', "SELECT leader_release('named', 'pod-2')"),
	't', 'in the restored database pod-2 releases "named"');
take_group($node, 'restored', 'named', 'pod-3',
	"in the restored database 'pod-3' takes \"named\"",
	'the first new leader of "named" in the restored database');

# A group the source never had starts from term 1, and the source is untouched.
is($node->safe_psql('restored', "SELECT leader_try_acquire('new'), leader_term('new')"),
	't|1', 'a new group in the restored database starts at term 1');
is($node->safe_psql('app', "SELECT leader_current('named')"),
	'pod-2', 'the source database still has its own named lease');
is($node->safe_psql('app', "SELECT leader_try_acquire('sb')"),
	'f', 'in the source database "sb" is still held by its connected leader');
is($sb_session->query_safe("SELECT leader_is_leader('sb'), leader_term('sb')"),
	"t|$sb_term", 'the source leader of "sb" still leads with its term');
$sb_session->quit;

$node->stop;
done_testing();
