# The Node.js examples (examples/node, node-postgres from npm), each run as
# three copies against a live server, through ExampleTest's
# check_worker_example: one leader among three; failover when the leader is
# killed, frozen, stopped, forced out and (session-bound) terminated;
# elected, revoked and newLeader callbacks once per change; fenced work by
# the leader of each term alone.
#   - worker.js: a pg.Client whose session holds the leadership; a killed
#     leader's session ends and the next copy takes over at once (vacated);
#   - pool-worker.js: a pg.Pool application with a named holder, renewed from
#     whichever pooled connection; a killed leader's lease expires (expired);
#     run once connected to the server, and once through PgBouncer in
#     transaction pooling, with its LISTEN connection (LEADER_LISTEN_URL)
#     going to the server directly.
# The test command installs the examples' dependencies (npm ci); run alone,
# this test runs "npm ci" itself if they are missing.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use ExampleTest;
use IPC::Run;
use LeaderTest;
use PgBouncer;
use PostgreSQL::Test::Utils;
use Test::More;

my $dir = example_path('node');
unless (-d "$dir/node_modules/pg")
{
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'npm', 'ci', '--no-audit', '--no-fund', '--prefix', $dir ],
		'<', \undef, '>', \$out, '2>', \$err)
	  or die "npm ci failed in examples/node:\n$out$err";
}

my $node = example_node('example_node');

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
	ttl => 4);

my $bouncer = PgBouncer->start_pgbouncer($node, pool_size => 3);
check_worker_example(
	$node,
	label => 'node-pgbouncer',
	command => [ 'node', "$dir/pool-worker.js" ],
	named => 1,
	ttl => 4,
	env => {
		PGHOST => '127.0.0.1',
		PGPORT => $bouncer->{port},
		LEADER_LISTEN_URL => 'postgresql:///postgres?host='
		  . $node->host
		  . '&port='
		  . $node->port
	});
my ($stats) = grep { $_->{database} eq 'postgres' } $bouncer->show('STATS');
cmp_ok($stats->{total_xact_count}, '>', 0,
	'the copies\' transactions went through PgBouncer');
ok($bouncer->stop, 'pgbouncer stops on SIGTERM');

$node->stop;
done_testing();
