# On a hot standby the leases are readable (they are replicated rows) but
# every changing call fails with SQLSTATE 25006 and a hint to use the
# primary.  After promotion the standby's leases go on with terms that never
# go backwards (invariant 2): session-bound leases of the old primary's
# sessions are void there, named leases keep their holder and term.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use LeaderTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->start;
$primary->safe_psql('postgres', 'CREATE EXTENSION leader');

# A session-bound leader of "sb" that stays connected, and a named lease of
# "named" held by 'pod-1' for an hour, each a few terms in.
foreach my $round (1 .. 2)
{
	$primary->safe_psql(
		'postgres', qq{
		SELECT leader_try_acquire('named', '1 hour', 'pod-1');
		SELECT leader_release('named', 'pod-1');
		SELECT leader_try_acquire('sb');
	});
}
my $sb_session = session($primary, 'primary-leader');
is($sb_session->query_safe("SELECT leader_try_acquire('sb')"),
	't', 'on the primary a session leads "sb"');
my $sb_term = $sb_session->query_safe("SELECT leader_term('sb')");
my $sb_pid = $sb_session->{backend_pid};
is($sb_term, 3, '"sb" is on its third term');
is( $primary->safe_psql(
		'postgres', "SELECT leader_try_acquire('named', '1 hour', 'pod-1')"),
	't',
	"on the primary 'pod-1' leads \"named\"");
my $named_term =
  $primary->safe_psql('postgres', "SELECT leader_term('named', 'pod-1')");
is($named_term, 3, '"named" is on its third term');

$primary->backup('backup');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'backup', has_streaming => 1);
$standby->start;

# A change made after the backup reaches the standby by streaming.
is( $primary->safe_psql(
		'postgres', "SELECT leader_try_acquire('streamed', '1 hour', 'pod-9')"),
	't',
	'a lease taken on the primary after the backup');
$primary->wait_for_catchup($standby);

is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'),
	't', 'the standby is in recovery');

# ---- reads work on the standby ----

is($standby->safe_psql('postgres', "SELECT leader_current('named')"),
	'pod-1', 'standby: leader_current shows the named holder');
is($standby->safe_psql('postgres', "SELECT leader_current('sb')"),
	"primary-leader (pid $sb_pid)",
	'standby: leader_current shows the primary\'s session-bound holder');
is($standby->safe_psql('postgres', "SELECT leader_current('streamed')"),
	'pod-9', 'standby: a lease taken after the backup has streamed in');
is($standby->safe_psql('postgres', "SELECT leader_is_leader('named', 'pod-1')"),
	't', 'standby: leader_is_leader works');
is($standby->safe_psql('postgres', "SELECT leader_term('named', 'pod-1')"),
	$named_term, 'standby: leader_term works');
is( $standby->safe_psql(
		'postgres',
		'SELECT group_name, term, state FROM leader_status ORDER BY group_name'),
	"named|$named_term|held\nsb|$sb_term|held\nstreamed|1|held",
	'standby: leader_status lists every group as held');
is( $standby->safe_psql(
		'postgres',
		'SELECT group_name, term, holder FROM leader_lease ORDER BY group_name'),
	"named|$named_term|pod-1\nsb|$sb_term|primary-leader (pid $sb_pid)\nstreamed|1|pod-9",
	'standby: the leader_lease table is readable');

# ---- every changing call fails with 25006 and a hint ----

my @changing = (
	"SELECT leader_try_acquire('g')",
	"SELECT leader_try_acquire('named', '1 hour', 'pod-1')",
	"SELECT leader_try_acquire('sb')",
	"SELECT leader_acquire('g', '1s')",
	"SELECT leader_acquire('named', '1s', '1 hour', 'pod-1')",
	"SELECT leader_release('named', 'pod-1')",
	"SELECT leader_release('sb')",
	"SELECT leader_force_release('named')",
	"SELECT leader_force_release('sb')",
	"SELECT leader_fence('named', $named_term)",
	"SELECT leader_fence('sb', $sb_term)",);
foreach my $call (@changing)
{
	my ($ret, $stdout, $stderr) = $standby->psql(
		'postgres', qq{\\set VERBOSITY verbose
$call;}, on_error_stop => 0);
	like($stderr, qr/ERROR:  25006: /, "standby: $call fails with 25006");
	like($stderr, qr/HINT:  .*primary/, "standby: $call has a hint naming the primary");
	is($stdout, '', "standby: $call returns nothing");
}

# A changing call inside a larger transaction fails the same way.
my ($ret, $stdout, $stderr) = $standby->psql(
	'postgres', qq{\\set VERBOSITY verbose
BEGIN;
SELECT leader_current('named');
SELECT leader_try_acquire('other');
COMMIT;}, on_error_stop => 0);
like($stderr, qr/ERROR:  25006: /,
	'standby: a changing call within a transaction fails with 25006');

# Nothing changed, on either side.
is( $standby->safe_psql(
		'postgres',
		'SELECT group_name, term, state FROM leader_status ORDER BY group_name'),
	"named|$named_term|held\nsb|$sb_term|held\nstreamed|1|held",
	'standby: the leases are unchanged after the failed calls');
is($sb_session->query_safe("SELECT leader_is_leader('sb'), leader_term('sb')"),
	"t|$sb_term", 'primary: the session-bound leader still leads');

# ---- promotion ----

$primary->wait_for_catchup($standby);
$primary->stop;
eval { $sb_session->quit; };
$standby->promote;
$standby->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()')
  or die 'the standby was not promoted';

is($standby->safe_psql('postgres', "SELECT leader_current('named')"),
	'pod-1', 'promoted: the named lease is still held by pod-1');
is($standby->safe_psql('postgres', "SELECT leader_try_acquire('named', '1 hour', 'pod-1'), leader_term('named', 'pod-1')"),
	"t|$named_term", 'promoted: pod-1 renews the named lease with its term');
is(lease_status($standby, 'postgres', 'sb'),
	'vacant|f',
	'promoted: the old primary\'s session-bound lease is void');
# Terms of WAL timeline N start at (N - 1) * 2^32: the promoted standby is on
# timeline 2, so its first new terms are 2^32, above any term the old
# primary could have handed out, replicated or not.
my $timeline2_floor = 4294967296;
is($standby->safe_psql('postgres', "SELECT leader_try_acquire('sb'), leader_term('sb')"),
	"t|$timeline2_floor",
	'promoted: a session takes "sb" with the first term of timeline 2');
is($standby->safe_psql('postgres', "SELECT leader_force_release('named')"),
	't', 'promoted: the named lease can be force-released');
is( $standby->safe_psql(
		'postgres',
		"SELECT leader_try_acquire('named', '1 hour', 'pod-2'), leader_term('named', 'pod-2')"),
	"t|$timeline2_floor",
	'promoted: a new holder of "named" gets the first term of timeline 2');
is( $standby->safe_psql(
		'postgres',
		"SELECT leader_release('named', 'pod-2'), leader_try_acquire('named', '1 hour', 'pod-3'), leader_term('named', 'pod-3')"),
	't|t|' . ($timeline2_floor + 1),
	'promoted: and terms go on by one on the new timeline');

$standby->stop;
done_testing();
