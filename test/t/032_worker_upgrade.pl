# A server restarted with the 1.1 library preloaded, over a database still at
# version 1.0: calls fail with the remedy, the background worker logs the
# same clear error instead of misreading rows, and once ALTER EXTENSION
# leader UPDATE has run, the worker records the end of an expired lease
# with its term kept.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use LeaderTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = preloaded_node('upgrade');
$node->safe_psql('postgres', 'CREATE ROLE app_role; CREATE DATABASE app');
# A named lease of version 1.0 (as its library stored it), expired already:
# the worker looks at it as soon as it starts.
$node->safe_psql('app', q{
	CREATE EXTENSION leader VERSION '1.0';
	INSERT INTO leader_lease VALUES ('named', 6, 'svc', 'named', 'app_role', NULL, NULL,
		now() - interval '1 minute', now() - interval '1 minute', now() - interval '1 second')});
my $log_offset = -s $node->logfile;
$node->restart;

my ($rc, $out, $err) = $node->psql('app', "SELECT leader_is_leader('named', 'svc')");
like($err,
	qr/table "public.leader_lease" does not have the columns that extension "leader" expects.*HINT:  Update the extension with ALTER EXTENSION leader UPDATE\./s,
	'at 1.0 a call fails with the hint to update the extension');

# The worker's lines carry no application_name; the test's do.
ok($node->wait_for_log(
		qr/\] ERROR:  table "public.leader_lease" does not have the columns that extension "leader" expects\n[^\n]*\] DETAIL:  The table is that of version 1.0 of the extension[^\n]*\n[^\n]*\] HINT:  Update the extension with ALTER EXTENSION leader UPDATE\./,
		$log_offset),
	'the worker logs the clear error, with the hint, for the due lease');
my $log = slurp_file($node->logfile, $log_offset);
unlike($log, qr/invalid memory alloc|server process .* was terminated by signal/,
	'no misread row and no crash');

$node->safe_psql('app', 'ALTER EXTENSION leader UPDATE');
ok($node->poll_query_until('app',
		"SELECT holder IS NULL AND term = 6 FROM leader_lease WHERE group_name = 'named'"),
	'after the update the worker records the end of the expired lease, term kept');
is($node->safe_psql('app', q{
	SET ROLE app_role;
	SELECT leader_try_acquire('named', '1 hour', 'svc'), leader_term('named', 'svc')}),
	't|7', 'the next term is above the 1.0 term');

$node->stop;
done_testing();
