# Commands that need a database free of connections (DROP DATABASE and
# the like) make its worker leave, but only for a role the command itself
# permits, and the worker comes back whatever happens to the command:
#   (a) bob, who may connect to alice's database d but not drop it, runs
#       "SET statement_timeout = '1ms'; DROP DATABASE d" over and over: each
#       fails for want of permission (42501), and d's worker never leaves;
#   (b) alice, the owner, does the same with ALTER DATABASE d SET
#       TABLESPACE: the timeout strikes during the pause, or the command
#       fails (42501) after it, and d has its worker afterwards;
#   (c) alice's DROP DATABASE d fails, bob being connected to d (55006): d
#       gets its worker back;
#   (d) alice's session is terminated while her DROP DATABASE waits for
#       bob's session to leave: d gets its worker back;
#   (e) a DROP DATABASE that succeeds leaves no worker behind, and the
#       other databases keep theirs.
# After each, the worker of d ends an expired lease with an event.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use LeaderTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = preloaded_node('database_commands_hostile');
$node->safe_psql(
	'postgres', q{
	CREATE ROLE alice LOGIN CREATEDB;
	CREATE ROLE bob LOGIN;
	CREATE DATABASE d OWNER alice;
	CREATE DATABASE gone OWNER alice;
});
$node->safe_psql($_, 'CREATE EXTENSION leader') foreach qw(d gone);
my $worker = worker_pid($node, 'd');
ok($worker, 'database d has its worker');
ok(worker_pid($node, 'gone'), 'database gone has its worker');

# $role runs "SET statement_timeout = '1ms'; $command" $n times in one
# session of database postgres; returns the SQLSTATEs of the errors.
sub with_timeout
{
	my ($role, $command, $n) = @_;
	my ($ret, $out, $err) = $node->psql(
		'postgres',
		"\\set VERBOSITY verbose\nSET ROLE $role;\nSET statement_timeout = '1ms';\n"
		  . ("$command;\n" x $n),
		on_error_stop => 0);
	return [ $err =~ /ERROR:  ([0-9A-Z]{5}):/g ];
}

# ---- (a) an unprivileged role ----

my $codes = with_timeout('bob', 'DROP DATABASE d', 50);
is(scalar(@$codes), 50, '(a) each of bob\'s 50 DROP DATABASE d fails');
is_deeply([ grep { $_ ne '42501' } @$codes ],
	[], '(a) each for want of permission (42501)');
is(worker_pid($node, 'd'), $worker, '(a) d\'s worker never left');
ok(worker_ends_lease($node, 'd', 'after-a'),
	'(a) it ends an expired lease, with an event');

# ---- (b) the owner, her statement timed out ----

# (Not DROP DATABASE: PostgreSQL leaves a database whose drop was cancelled
# half-way invalid.  alice may not use pg_default in this command: the
# command fails after the pause, unless the timeout struck first.)
$codes = with_timeout('alice', 'ALTER DATABASE d SET TABLESPACE pg_default', 20);
ok(scalar(grep { $_ eq '57014' } @$codes),
	'(b) the timeout cancels some of alice\'s 20 ALTER DATABASE d SET TABLESPACE');
is_deeply([ grep { $_ ne '57014' && $_ ne '42501' } @$codes ],
	[], '(b) the others fail for want of CREATE on pg_default (42501)');
# The timeout may strike before the pause or during it.
my $new = worker_pid($node, 'd');
ok($new, '(b) d has its worker');
ok(worker_ends_lease($node, 'd', 'after-b'),
	'(b) it ends an expired lease, with an event');
$worker = $new;

# ---- (c) the owner's DROP fails: bob is connected to d ----

my $bob = session($node, 'bob-in-d', 'd');
my ($ret, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\nSET ROLE alice;\nDROP DATABASE d;");
like($err, qr/ERROR:  55006:/, '(c) alice\'s DROP DATABASE d fails: d is being accessed');
$new = replaced_worker_pid($node, 'd', $worker);
ok($new, '(c) d gets its worker back');
ok(worker_ends_lease($node, 'd', 'after-c'),
	'(c) it ends an expired lease, with an event');
$worker = $new;

# ---- (d) the owner's session ends during her DROP ----

my $alice = session($node, 'alice-dropping');
$alice->query_safe('SET ROLE alice');
start_query($alice, 'DROP DATABASE d;');
ok( $node->poll_query_until(
		'postgres', qq{
		SELECT query = 'DROP DATABASE d;' AND state = 'active'
		FROM pg_stat_activity WHERE pid = $alice->{backend_pid}}),
	'(d) alice\'s DROP DATABASE d waits for bob\'s session');
$node->safe_psql('postgres', "SELECT pg_terminate_backend($alice->{backend_pid})");
ok(backend_gone($node, $alice->{backend_pid}), '(d) alice\'s session is terminated');
eval { $alice->quit; };
$new = replaced_worker_pid($node, 'd', $worker);
ok($new, '(d) d gets its worker back');
ok(worker_ends_lease($node, 'd', 'after-d'),
	'(d) it ends an expired lease, with an event');
$bob->quit;

# ---- (e) a DROP DATABASE that succeeds ----

($ret, $out, $err) = $node->psql('postgres', 'SET ROLE alice; DROP DATABASE gone');
is($ret, 0, '(e) alice drops database gone') or diag($err);
is( $node->safe_psql(
		'postgres', q{
		SELECT count(*) FROM pg_stat_activity
		WHERE backend_type = 'leader worker' AND datname IS DISTINCT FROM 'd'
		  AND datname IS DISTINCT FROM 'postgres'}),
	'0',
	'(e) no worker is left for it');
ok(worker_ends_lease($node, 'd', 'after-e'),
	'(e) d\'s worker still ends an expired lease, with an event');

$node->stop;
done_testing();
