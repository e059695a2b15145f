# No false "false" on a free group: a candidate that calls leader_try_acquire
# while the background worker is recording the end of the group's lease
# waits for the worker's short transaction and wins, instead of answering
# false.
#
# Each trial fences a lease until after it has expired, commits (which tells
# the worker to record the expiry at once), and calls leader_try_acquire
# immediately, in the same session: it must answer true every time.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use LeaderTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = preloaded_node('worker_end');
$node->safe_psql('postgres', 'CREATE ROLE alice LOGIN');
ok(defined worker_pid($node, 'postgres'), 'the database has its worker');

my $wins = 0;
foreach my $trial (1 .. 10)
{
	my $group = "job-$trial";
	my $out = $node->safe_psql(
		'postgres', qq{
		SELECT leader_try_acquire('$group', '200 milliseconds', 'pod-1') \\gset
		BEGIN;
		SELECT leader_fence('$group', leader_term('$group', 'pod-1')) \\gset
		SELECT pg_sleep(0.3) \\gset
		COMMIT;
		SELECT leader_try_acquire('$group', '1 hour', 'pod-2');
	}, extra_params => [ '-U', 'alice' ]);
	$wins++ if $out eq 't';
}
is($wins, 10,
	'right after a fence of an expired lease commits, leader_try_acquire wins 10 of 10 times');

# Whoever recorded the expiry (the worker or the candidate), the next
# holder got the next term.
is( $node->safe_psql(
		'postgres', q{
		SELECT count(*) FROM leader_lease
		WHERE term = 2 AND holder = 'pod-2' AND group_name LIKE 'job-%'}),
	'10',
	'every group went to pod-2 with term 2');

done_testing();
