# pg_upgrade from PostgreSQL 15 (the installation LEADER_UPGRADE_FROM names,
# with the extension installed into it) to the PostgreSQL under test, with
# the library preloaded on both sides and leases held: a named lease, a
# session-bound lease whose session ends with the old server, and a
# reclaimed group's term floor.  Every term survives; the worker starts on
# the new cluster (which has no list of databases yet) and ends leases; the
# dead session's lease is ended; the first term of every group after the upgrade is above
# its old one; and neither server that pg_upgrade runs in binary-upgrade
# mode starts the launcher or a worker.
use strict;
use warnings;

use Cwd;
use FindBin;
use lib $FindBin::RealBin;
use LeaderTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $old_install = $ENV{LEADER_UPGRADE_FROM};
plan skip_all =>
  'LEADER_UPGRADE_FROM names no older PostgreSQL with the extension installed '
  . '(scripts/test.sh sets it when it tests 16 or later)'
  unless $old_install;

# Both servers log the start of every background worker (DEBUG1), also while
# pg_upgrade runs them.
my $conf = "shared_preload_libraries = 'leader'\nlog_min_messages = debug1\n";

my $old = PostgreSQL::Test::Cluster->new('old', install_path => $old_install);
$old->init(extra => ['--data-checksums']);
$old->append_conf('postgresql.conf', $conf);
$old->start;
$old->safe_psql('postgres', 'CREATE ROLE app_role; CREATE DATABASE app');
$old->safe_psql('app', 'CREATE EXTENSION leader');
ok(defined worker_pid($old, 'app'), 'the old cluster runs the worker');

# "named" leads at term 2 for an hour; "gone" reached term 3, fell vacant and
# was reclaimed when app_role, at its cap of 3 groups, created "sess" (so the
# floor holds 3); "sess" is held by a session, at term 4 (above the floor).
$old->safe_psql('app', q{
	SET leader.max_groups_per_role = 3;
	SET ROLE app_role;
	SELECT leader_try_acquire('gone', '1 hour', 'svc'), leader_release('gone', 'svc'),
	       leader_try_acquire('gone', '1 hour', 'svc'), leader_release('gone', 'svc'),
	       leader_try_acquire('gone', '1 hour', 'svc'), leader_release('gone', 'svc');
	SELECT leader_try_acquire('named', '1 hour', 'svc'), leader_release('named', 'svc'),
	       leader_try_acquire('named', '1 hour', 'svc');
	SELECT leader_try_acquire('other', '1 hour', 'svc')});
my $holder = $old->background_psql('app');
$holder->query_safe(q{
	SET leader.max_groups_per_role = 3;
	SET ROLE app_role;
	SELECT leader_try_acquire('sess')});
is($old->safe_psql('app', q{
	SELECT string_agg(group_name || '=' || term, ' ' ORDER BY group_name) FROM leader_lease}),
	'named=2 other=1 sess=4', 'before: the terms of the groups');
is($old->safe_psql('app', 'SELECT max(term) FROM leader_term_floor'), '3',
	'before: the floor of the reclaimed group');
$holder->quit;
my $expires_at = $old->safe_psql('app',
	"SELECT expires_at FROM leader_lease WHERE group_name = 'named'");
$old->stop;

my $new = PostgreSQL::Test::Cluster->new('new');
$new->init(extra => ['--data-checksums']);
$new->append_conf('postgresql.conf', $conf);

my $cwd = getcwd();
chdir $PostgreSQL::Test::Utils::tmp_check;    # pg_upgrade writes its scripts here
command_ok(
	[
		'pg_upgrade', '--no-sync', '--retain',
		'-d', $old->data_dir, '-D', $new->data_dir,
		'-b', $old->config_data('--bindir'), '-B', $new->config_data('--bindir'),
		'-s', $new->host, '-p', $old->port, '-P', $new->port
	],
	'pg_upgrade from PostgreSQL 15 succeeds');
chdir $cwd;

# The servers pg_upgrade ran in binary-upgrade mode: they started no worker of
# ours (their log shows every worker start at DEBUG1, as the new cluster's
# own log does below).
my @upgrade_logs = glob($new->data_dir . '/pg_upgrade_output.d/*/log/pg_upgrade_server.log');
ok(@upgrade_logs == 1 && -s $upgrade_logs[0], 'pg_upgrade kept its servers\' log');
my $upgrade_log = @upgrade_logs ? slurp_file($upgrade_logs[0]) : '';
like($upgrade_log, qr/binary.upgrade|pg_upgrade/i, 'the log is that of the binary-upgrade servers');
unlike($upgrade_log, qr/starting background worker process "leader /,
	'no launcher or worker of leader started in binary-upgrade mode');

my $log_offset = -s $new->logfile // 0;
$new->start;
like(slurp_file($new->logfile, $log_offset),
	qr/starting background worker process "leader launcher"/,
	'the new cluster logs the start of the launcher');

is($new->safe_psql('app', 'SELECT extversion FROM pg_extension WHERE extname = \'leader\''),
	'1.1', 'the extension keeps its version');
is($new->safe_psql('app', q{
	SELECT string_agg(group_name || '=' || term, ' ' ORDER BY group_name) FROM leader_lease}),
	'named=2 other=1 sess=4', 'after: every term survives');
is($new->safe_psql('app', 'SELECT max(term) FROM leader_term_floor'), '3',
	'after: the term floor survives');
is($new->safe_psql('app', q{
	SET ROLE app_role;
	SELECT leader_is_leader('named', 'svc'), leader_term('named', 'svc'),
	       expires_at FROM leader_lease WHERE group_name = 'named'}),
	"t|2|$expires_at", 'the named lease still leads, with its term and expiry');
is($new->safe_psql('app', q{
	SET ROLE app_role;
	SELECT leader_try_acquire('named', '1 hour', 'svc'), leader_term('named', 'svc')}),
	't|2', 'its holder renews it in the same term');

ok(worker_ends_lease($new, 'app', 'probe'),
	'the worker starts on the new cluster and ends an expired lease');
ok($new->poll_query_until('app',
		"SELECT holder IS NULL FROM leader_lease WHERE group_name = 'sess'"),
	'the lease of the session that ended with the old server is ended');

# The first new term of every group is above the old one; "gone" is created
# anew above the floor.
is($new->safe_psql('app', q{
	SET ROLE app_role;
	SELECT leader_release('named', 'svc');
	SELECT leader_try_acquire(g, '1 hour', 'next') FROM unnest(ARRAY['named', 'sess', 'gone']) g;
	SELECT string_agg(group_name || '=' || term, ' ' ORDER BY group_name) FROM leader_lease
	 WHERE group_name IN ('named', 'sess', 'gone')}),
	"t\nt\nt\nt\ngone=4 named=3 sess=5", 'every group\'s next term is above its old one');

$new->stop;
done_testing();
