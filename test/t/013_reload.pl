# A configuration reload (SIGHUP) reaches the launcher and the workers
# without harm. (Found by the fault-injection run: the launcher kept a list
# made inside a transaction after the transaction freed it, and crashed at
# the next reload, which took the whole server through a crash restart.)
# After several reloads, the launcher and the worker are the same processes,
# no server process has crashed, and the worker still ends leases on time.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use LeaderTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = preloaded_node('reload');

my $worker = worker_pid($node, 'postgres');
my $launcher = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'leader launcher'");
ok($worker && $launcher, 'the launcher and the worker run');

foreach my $round (1 .. 3)
{
	my $offset = -s $node->logfile;
	$node->append_conf('postgresql.conf', "leader.default_ttl = '${round}0s'");
	$node->reload;
	# Every process has read the file once this session sees the new value.
	ok( $node->poll_query_until(
			'postgres', 'SHOW leader.default_ttl', "${round}0s"),
		"reload $round: the new setting is in effect");
	$node->safe_psql('postgres', 'SELECT pg_sleep(0.2)');    # the others too
	is( $node->safe_psql(
			'postgres',
			"SELECT string_agg(backend_type, ',' ORDER BY backend_type) FROM pg_stat_activity "
			  . "WHERE pid IN ($launcher, $worker)"),
		'leader launcher,leader worker',
		"reload $round: the launcher and the worker are the same processes");
	unlike(slurp_file($node->logfile, $offset),
		qr/terminated by signal|server process .* was terminated/,
		"reload $round: no server process crashed");
}

my $listener = listen_leader_changed($node, 'postgres');
$node->safe_psql('postgres', "SELECT leader_try_acquire('after-reload', '1 s', 'h')");
my @events = wait_for_events($listener,
	sub { grep { $_->{event} eq 'expired' && $_->{group} eq 'after-reload' } @_ }, 10);
is($events[-1]{sender}, $worker, 'the worker still ends leases after the reloads');

$listener->quit;
$node->stop;
done_testing();
