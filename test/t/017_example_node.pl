# The Node.js examples (examples/node, node-postgres from npm), each run as
# three copies against a live server, through ExampleTest's
# check_worker_example: one leader among three; failover when the leader is
# killed, stopped, forced out and (session-bound) terminated; elected,
# revoked and newLeader callbacks once per change; fenced work by the leader
# of each term alone.
#   - worker.js: a pg.Client whose session holds the leadership; a killed
#     leader's session ends and the next copy takes over at once (vacated);
#   - pool-worker.js: a pg.Pool application with a named holder, renewed from
#     whichever pooled connection; a killed leader's lease expires (expired).
# The examples' dependencies are installed with "npm ci" first if they are
# not there yet (from the npm registry, as package-lock.json pins them).
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use ExampleTest;
use IPC::Run;
use LeaderTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $dir = example_path('node');
unless (-d "$dir/node_modules/pg")
{
	local $ENV{npm_config_cache} = PostgreSQL::Test::Utils::tempdir() . '/npm-cache';
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'npm', 'ci', '--no-audit', '--no-fund', '--prefix', $dir ],
		'<', \undef, '>', \$out, '2>', \$err)
	  or BAIL_OUT("npm ci failed in examples/node:\n$out$err");
}

my $node = preloaded_node('example_node');
$node->safe_psql('postgres', '\i ' . example_path('schema.sql'));

check_worker_example(
	$node,
	label => 'node',
	command => [ 'node', "$dir/worker.js" ],
	named => 0,
	ttl => 3);

check_worker_example(
	$node,
	label => 'node-pool',
	command => [ 'node', "$dir/pool-worker.js" ],
	named => 1,
	ttl => 2);

$node->stop;
done_testing();
