# The Python example (examples/python/leader_worker.py, psycopg 3), run as
# three copies against a live server: one leader among three; failover when
# the leader is killed (its session ends: vacated), stopped (released),
# forced out and terminated; elected, revoked and new-leader callbacks once
# per change; fenced work by the leader of each term alone.  The scenario is
# ExampleTest's check_worker_example.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use ExampleTest;
use LeaderTest;
use Test::More;

my $node = example_node('example_python');

# Debian's python3, which has python3-psycopg (another python3 may come first
# on PATH).
check_worker_example(
	$node,
	label => 'python',
	command => [ '/usr/bin/python3', example_path('python/leader_worker.py') ],
	named => 0,
	ttl => 3);

$node->stop;
done_testing();
