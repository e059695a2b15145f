# A term is never handed out twice: the commit that starts a term is flushed
# before it returns, whatever synchronous_commit says.
#
# The server runs with synchronous_commit = off and a WAL writer that
# flushes at most every 10 s.  Each trial makes the WAL writer flush first
# (so that its next flush is 10 s away), acquires a group for a named holder,
# and crashes the server at once.  After the restart the lease and its term
# must be there, and the next holder must get term 2, not term 1 again.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use LeaderTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('durable');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
synchronous_commit = off
wal_writer_delay = 10s
});
$node->start;
$node->safe_psql(
	'postgres', q{
	CREATE ROLE app_owner LOGIN;
	CREATE ROLE alice LOGIN;
	CREATE DATABASE app OWNER app_owner;
});
$node->safe_psql('app', 'CREATE EXTENSION leader');
$node->safe_psql('app', 'CHECKPOINT');	# the setup itself is durable

foreach my $trial (1 .. 3)
{
	my $group = "job-$trial";
	is( $node->safe_psql(
			'app', qq{
			SELECT pg_current_xact_id() IS NOT NULL;
			SELECT leader_try_acquire('$group', '1 hour', 'pod-1');
			SELECT leader_term('$group', 'pod-1');
		}, extra_params => [ '-U', 'alice' ]),
		"t\nt\n1",
		"trial $trial: pod-1 is told it leads $group with term 1");
	$node->stop('immediate');
	$node->start;
	is($node->safe_psql('app',
			"SELECT term || ' ' || holder FROM leader_lease WHERE group_name = '$group'"),
		'1 pod-1',
		"trial $trial: after a crash, the lease of term 1 is still recorded");
	is( $node->safe_psql(
			'app', qq{
			SELECT leader_force_release('$group');
			SELECT leader_try_acquire('$group', '1 hour', 'pod-2');
			SELECT leader_term('$group', 'pod-2');
		}),
		"t\nt\n2",
		"trial $trial: the next holder gets term 2");
}

done_testing();
