# leader.max_databases: how many databases the background workers serve,
# set at server start.
#   (a) it is 2 here, and cannot be changed in a session (55P02);
#   (b) databases without the extension take none of the two (their
#       workers leave and give their place back): a second database with
#       the extension is served;
#   (c) CREATE EXTENSION in a third database warns (WARNING, 53400) with
#       a hint naming leader.max_databases, succeeds, and the database gets
#       no worker (its leases still end when a call touches them);
#   (d) DROP EXTENSION in the second frees its place: a CREATE EXTENSION
#       elsewhere is served without a warning;
#   (e) raised to 4 and restarted: every database with the extension is
#       served.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use LeaderTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('max_databases');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'leader'");
$node->append_conf('postgresql.conf', 'leader.max_databases = 2');
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION leader');
my $log_offset = -s $node->logfile;
$node->safe_psql('postgres', "CREATE DATABASE $_") foreach qw(plain1 plain2 a b c);
ok(worker_pid($node, 'postgres'), 'database postgres has its worker');
# Each new database got a worker, in case its template had the extension.
foreach my $db (qw(plain1 plain2 a b c))
{
	my $oid = $node->safe_psql('postgres', "SELECT oid FROM pg_database WHERE datname = '$db'");
	ok( eval {
			$node->wait_for_log(
				qr/extension "leader" is not installed in database $oid\b/, $log_offset);
		},
		"(b) the worker started for new database $db leaves: no extension there");
}

sub has_worker
{
	my ($db) = @_;
	return $node->safe_psql('postgres', qq{
		SELECT count(*) FROM pg_stat_activity
		WHERE backend_type = 'leader worker' AND datname = '$db'});
}

# ---- (a) the setting ----

is($node->safe_psql('postgres', 'SHOW leader.max_databases'),
	'2', '(a) leader.max_databases is 2');
my ($ret, $out, $err) = $node->psql('postgres',
	"\\set VERBOSITY verbose\nSET leader.max_databases = 3");
like($err, qr/ERROR:  55P02:/, '(a) it cannot be changed in a session (55P02)');

# ---- (b) databases without the extension take no place ----

($ret, $out, $err) = $node->psql('a', "\\set VERBOSITY verbose\nCREATE EXTENSION leader");
is($ret, 0, '(b) CREATE EXTENSION in a succeeds');
unlike($err, qr/WARNING/, '(b) without a warning, plain1 and plain2 taking no place');
ok(worker_ends_lease($node, 'a', 'g-a'), '(b) a is served');

# ---- (c) one database too many ----

($ret, $out, $err) = $node->psql('b', "\\set VERBOSITY verbose\nCREATE EXTENSION leader");
is($ret, 0, '(c) CREATE EXTENSION in b succeeds');
like(
	$err,
	qr/WARNING:  53400: leader: no background worker can serve database \d+\n.*\nHINT:  Raise leader\.max_databases/,
	'(c) with a WARNING (53400) and a hint naming leader.max_databases');
sleep(1);
is(has_worker('b'), '0', '(c) b gets no worker');
is( $node->safe_psql(
		'b', q{
		SELECT leader_try_acquire('g', '1ms', 'h');
		SELECT pg_sleep(0.01);
		SELECT leader_try_acquire('g', '1 min', 'other');}),
	"t\n\nt",
	'(c) in b a lease still ends when a call touches its group');

# ---- (d) a place given back ----

$node->safe_psql('a', 'DROP EXTENSION leader');
ok( $node->poll_query_until('postgres', qq{
		SELECT count(*) = 0 FROM pg_stat_activity
		WHERE backend_type = 'leader worker' AND datname = 'a'}),
	'(d) DROP EXTENSION in a: its worker leaves');
($ret, $out, $err) = $node->psql('c', "\\set VERBOSITY verbose\nCREATE EXTENSION leader");
is($ret, 0, '(d) CREATE EXTENSION in c succeeds');
unlike($err, qr/WARNING/, '(d) without a warning');
ok(worker_ends_lease($node, 'c', 'g-c'), '(d) c is served');

# ---- (e) raised ----

$node->safe_psql('a', 'CREATE EXTENSION leader');
$node->append_conf('postgresql.conf', 'leader.max_databases = 4');
$node->restart;
ok(worker_ends_lease($node, $_, "g-e-$_"), "(e) after raising it to 4, $_ is served")
  foreach qw(postgres a b c);

$node->stop;
done_testing();
