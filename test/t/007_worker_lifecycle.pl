# The background worker's life cycle (shared_preload_libraries = 'leader'):
#   1. at start-up the launcher starts a worker in every database that
#      has the extension, and none elsewhere; it stays, one per database,
#      and each ends its own database's expired leases at expires_at, with
#      an "expired" event, without any client call on the group;
#   2. a database given the extension after start-up gets its worker
#      within seconds (CREATE EXTENSION asks the launcher at commit);
#   3. DROP EXTENSION ends that database's worker cleanly (exit code 0, its
#      exit message in the log), and the others go on; CREATE EXTENSION
#      again brings it back;
#   4. a worker killed with SIGKILL makes the postmaster restart every
#      process (crash recovery); afterwards the launcher and the workers are
#      back, named leases are kept, session-bound ones are recorded vacated
#      by the worker, and leases expire again;
#   5. too few max_worker_processes: a LOG line with a hint naming
#      max_worker_processes, no crash, and the databases that got a worker
#      are served.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use LeaderTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use POSIX ();
use Time::HiRes qw(time);

my $node = PostgreSQL::Test::Cluster->new('worker_lifecycle');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'leader'");
# The test harness turns this off; a killed worker must restart the server.
$node->append_conf('postgresql.conf', 'restart_after_crash = on');
$node->start;

# ---- helpers ----

# The pid of the launcher, or '' when none runs.
sub launcher_pid
{
	return $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'leader launcher'");
}

# Wait until exactly one launcher runs (another process than $old_pid, when
# given); returns its pid, or '' if none came.
sub wait_for_launcher
{
	my ($old_pid) = @_;
	my $other = defined $old_pid ? "pid <> $old_pid" : 'true';
	$node->poll_query_until(
		'postgres', qq{
		SELECT count(*) = 1 AND bool_and($other) FROM pg_stat_activity
		WHERE backend_type = 'leader launcher'})
	  or return '';
	return launcher_pid();
}

# Wait until exactly one leader worker serves database $db (and, when
# $old_pid is given, it is another process than $old_pid); returns its pid,
# or '' if none came.
sub wait_for_worker
{
	my ($db, $old_pid) = @_;
	my $other = defined $old_pid ? "pid <> $old_pid" : 'true';
	$node->poll_query_until(
		'postgres', qq{
		SELECT count(*) = 1 AND bool_and($other) FROM pg_stat_activity
		WHERE backend_type = 'leader worker' AND datname = '$db'})
	  or return '';
	return $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'leader worker' AND datname = '$db'"
	);
}

# Whether a line matching $regexp appears in the server log after
# $offset, waiting for it (wait_for_log, without dying on a timeout).
sub log_shows
{
	my ($regexp, $offset) = @_;
	return eval { $node->wait_for_log($regexp, $offset); 1 };
}

sub db_oid
{
	my ($db) = @_;
	return $node->safe_psql('postgres',
		"SELECT oid FROM pg_database WHERE datname = '$db'");
}

# In database $db, $holder takes $group for 300 ms; nobody touches the group
# again.  The worker must record its end at expires_at (the row's holder
# becomes NULL only when an end is recorded; reading the row records
# nothing), and $listener (on $db) must receive "acquired" then "expired"
# for that term.  Five assertions, named after $what.
sub expires_by_itself
{
	my ($db, $listener, $group, $holder, $what) = @_;
	my ($won, $term, $expires_at) = split /\n/,
	  $node->safe_psql(
		$db, qq{
		SELECT leader_try_acquire('$group', '300ms', '$holder');
		SELECT leader_term('$group', '$holder');
		SELECT expires_at FROM leader_lease WHERE group_name = '$group';
	});
	is($won, 't', "$what: '$holder' takes \"$group\" for 300 ms");

	ok( $node->poll_query_until(
			$db,
			"SELECT holder IS NULL FROM leader_lease WHERE group_name = '$group'"),
		"$what: the end of the lease is recorded without any call on the group");
	# When the end was first seen (polls 0.1 s apart): not before expires_at
	# (a lease never ends before its TTL), and soon after it (the worker
	# sleeps until the next expiry, not for a long fixed period).
	is( $node->safe_psql(
			$db,
			"SELECT clock_timestamp() >= '$expires_at'::timestamptz, "
			  . "clock_timestamp() < '$expires_at'::timestamptz + interval '5 s'"),
		't|t',
		"$what: its end was first seen after expires_at, within 5 s of it");

	my @events = grep { $_->{group} eq $group } events_so_far($node, $db, $listener);
	is_deeply(summary(@events), [ "acquired $term null", "expired $term null" ],
		"$what: the listener got acquired, then expired, for term $term");
	my $event_expires_at = @events ? "'$events[-1]{expires_at}'" : 'NULL';
	is( $node->safe_psql(
			$db,
			"SELECT ${event_expires_at}::timestamptz = '$expires_at'::timestamptz"),
		't',
		"$what: the expired event carries the lease's expires_at");
}

# ---- 1. at start-up: a worker per database with the extension ----

$node->safe_psql('postgres', 'CREATE DATABASE db1');
$node->safe_psql('postgres', 'CREATE DATABASE db2');
$node->safe_psql('db1', 'CREATE EXTENSION leader');
$node->safe_psql('db2', 'CREATE EXTENSION leader');

# Restart, so that the launcher finds both databases by itself at start-up.
my $log_offset = -s $node->logfile;
$node->restart;

ok(wait_for_launcher(), 'the launcher runs');
my %worker;
$worker{db1} = wait_for_worker('db1');
$worker{db2} = wait_for_worker('db2');
ok($worker{db1}, 'db1 has its worker after start-up');
ok($worker{db2}, 'db2 has its worker after start-up');
isnt($worker{db1}, $worker{db2}, 'db1 and db2 have different workers');

# The postgres database has no extension: after a clean restart (the list
# of the databases that have it kept) no worker is started there.
my $postgres_oid = db_oid('postgres');
unlike(
	slurp_file($node->logfile, $log_offset),
	qr/leader worker exiting: extension "leader" is not installed in database $postgres_oid\b/,
	'no worker was started in database postgres (no extension)');
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'leader worker' AND datname = 'postgres'"
	),
	'no worker stays in database postgres');

# Each worker expires its own database's leases.
my %listener;
$listener{$_} = listen_leader_changed($node, $_) foreach qw(db1 db2);
expires_by_itself('db1', $listener{db1}, 'g1', 'pod-1', 'db1');
expires_by_itself('db2', $listener{db2}, 'g2', 'pod-2', 'db2');

# ---- 2. a database given the extension after start-up ----

$node->safe_psql('postgres', 'CREATE DATABASE db3');
my $db3_oid = db_oid('db3');
my $created_at = time;
$node->safe_psql('db3', 'CREATE EXTENSION leader');
$worker{db3} = wait_for_worker('db3');
my $pickup = time - $created_at;
ok($worker{db3}, 'db3 gets a worker after CREATE EXTENSION');
ok($pickup < 10, "db3's worker came within seconds (${pickup}s)");
$listener{db3} = listen_leader_changed($node, 'db3');
expires_by_itself('db3', $listener{db3}, 'g3', 'pod-3', 'db3');

# ---- 3. DROP EXTENSION ends the database's worker ----

$listener{db3}->quit;
$log_offset = -s $node->logfile;
$node->safe_psql('db3', 'DROP EXTENSION leader');
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'leader worker' AND datname = 'db3'"
	),
	'after DROP EXTENSION the worker of db3 is gone');
ok( log_shows(
		qr/leader worker exiting: extension "leader" is not installed in database $db3_oid\b/,
		$log_offset),
	"db3's worker logged its exit message");
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'leader worker' AND pid IN ($worker{db1}, $worker{db2})"),
	'2', 'the workers of db1 and db2 go on');
# The postmaster logs a worker's exit only when its code is not 0 (and then
# restarts it).
my $log = slurp_file($node->logfile, $log_offset);
unlike($log, qr/\(PID $worker{db3}\) (exited with exit code|was terminated)/,
	"db3's worker exited with code 0 (not an error, not restarted)");

# And CREATE EXTENSION again brings a worker back.
$node->safe_psql('db3', 'CREATE EXTENSION leader');
ok(wait_for_worker('db3', $worker{db3}), 'db3 gets a new worker after CREATE EXTENSION again');

# ---- 3b. commands that need a database nobody is connected to ----

# The worker would keep such a command from running (it is connected to the
# database); it leaves for the command and comes back after it, and a copy
# made from the database as a template gets a worker of its own.
$worker{db3} = wait_for_worker('db3');
$node->safe_psql('postgres', 'ALTER DATABASE db3 RENAME TO db3_renamed');
ok(wait_for_worker('db3_renamed', $worker{db3}),
	'ALTER DATABASE ... RENAME runs, and the renamed database gets its worker back');
$node->safe_psql('postgres', 'CREATE DATABASE db3_copy TEMPLATE db3_renamed');
ok(wait_for_worker('db3_copy'), 'CREATE DATABASE ... TEMPLATE runs, and the copy is served');
ok(wait_for_worker('db3_renamed'), 'the template database gets its worker back');
$log_offset = -s $node->logfile;
my ($drop_ret, $drop_out, $drop_err) =
  $node->psql('postgres', 'DROP DATABASE db3_copy; DROP DATABASE db3_renamed;');
is($drop_ret, 0, 'DROP DATABASE (without FORCE) of databases served by workers succeeds')
  or diag($drop_err);
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'leader worker' AND (datname IS NULL OR datname LIKE 'db3%')"
	),
	'no worker is left for the dropped databases');
unlike(slurp_file($node->logfile, $log_offset), qr/exited with exit code|does not exist/,
	'no worker failed or was restarted for them');
$node->safe_psql('postgres', 'CREATE DATABASE db3');
$node->safe_psql('db3', 'CREATE EXTENSION leader');
$worker{db3} = wait_for_worker('db3');
ok($worker{db3}, 'a new db3 with the extension is served again');

# ---- 4. a worker killed with SIGKILL: crash recovery, then all resume ----

# In db1: a named lease for an hour and a session-bound lease for an hour
# whose session is still connected when the server crashes (so only the
# worker's check of the sessions can end it during this test).
is($node->safe_psql('db1', "SELECT leader_try_acquire('named', '1 hour', 'pod-1')"),
	't', "db1: 'pod-1' takes \"named\" for an hour");
my $named_term = $node->safe_psql('db1', "SELECT leader_term('named', 'pod-1')");
my $sb_session = session($node, 'crash-victim', 'db1');
is($sb_session->query_safe("SELECT leader_try_acquire('sb', '1 hour')"),
	't', 'db1: a connected session leads "sb"');
my $sb_term = $sb_session->query_safe("SELECT leader_term('sb')");
$listener{$_}->quit foreach qw(db1 db2);

my $old_launcher = launcher_pid();
$log_offset = -s $node->logfile;
ok(kill('KILL', $worker{db1}), "SIGKILL sent to db1's worker");
ok( log_shows(
		qr/\(PID $worker{db1}\) was terminated by signal 9.*all server processes terminated; reinitializing/s,
		$log_offset),
	'the postmaster treats it as a crash and restarts every process');
ok($node->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()'),
	'the server accepts connections again after crash recovery');
eval { $sb_session->quit; };    # its backend was ended by the crash

ok(wait_for_launcher($old_launcher), 'a new launcher runs after the crash');
ok(wait_for_worker('db1', $worker{db1}), 'db1 has a new worker after the crash');
ok(wait_for_worker('db2', $worker{db2}), 'db2 has a new worker after the crash');

ok( $node->poll_query_until(
		'db1', "SELECT holder IS NULL FROM leader_lease WHERE group_name = 'sb'"),
	'db1: the worker recorded the end of the session-bound lease of the crash');
is(lease_status($node, 'db1', 'sb', qw(state term)),
	"vacant|$sb_term", 'db1: "sb" is vacant, with its last term');
is($node->safe_psql('db1', "SELECT leader_current('named'), leader_term('named', 'pod-1')"),
	"pod-1|$named_term", "db1: 'pod-1' still leads \"named\" with its term");

$listener{db1} = listen_leader_changed($node, 'db1');
expires_by_itself('db1', $listener{db1}, 'g1', 'pod-1', 'db1 after the crash');
$listener{db1}->quit;

# ---- 5. not enough max_worker_processes ----

# The launcher takes one of the two slots, leaving one for the workers of
# postgres, db1, db2 and db3.  (No logical replication launcher, and no
# parallel workers, to take the other.)
$node->append_conf(
	'postgresql.conf', qq{
max_worker_processes = 2
max_logical_replication_workers = 0
max_parallel_workers_per_gather = 0
});
$log_offset = -s $node->logfile;
$node->restart;
my $launcher = wait_for_launcher();
ok($launcher, 'with max_worker_processes = 2 the launcher runs');
ok( log_shows(
		qr/LOG:  leader: could not start the worker for database \d+\n.*HINT:  .*max_worker_processes/,
		$log_offset),
	'a LOG line says a worker could not start, with a hint naming max_worker_processes');

# One database with the extension gets the free slot (once the worker of
# postgres has left it); it is served.
ok( $node->poll_query_until(
		'postgres', qq{
		SELECT count(*) = 1 FROM pg_stat_activity
		WHERE backend_type = 'leader worker' AND datname IN ('db1', 'db2', 'db3')}),
	'one of the databases with the extension got a worker');
my $served = $node->safe_psql('postgres',
	"SELECT datname FROM pg_stat_activity WHERE backend_type = 'leader worker' AND datname IN ('db1', 'db2', 'db3')"
);
my $served_listener = listen_leader_changed($node, $served);
expires_by_itself($served, $served_listener, 'g-few', 'pod-9',
	"$served with too few worker processes");
$served_listener->quit;

# While some databases still wait for a slot, the launcher retries now
# and then; it must not spin.  (Linux: CPU time from /proc.)
SKIP:
{
	skip 'no /proc to read CPU time from', 1 unless -r "/proc/$launcher/stat";
	my $cpu_ticks = sub {
		my @f = split ' ', slurp_file("/proc/$launcher/stat") =~ s/^.*\) //sr;
		return $f[11] + $f[12];    # utime + stime, in clock ticks
	};
	my ($ticks, $started) = ($cpu_ticks->(), time);
	# Sleeping only to measure CPU use over an interval, not to wait for an event.
	Time::HiRes::sleep(2);
	my $busy = ($cpu_ticks->() - $ticks) / POSIX::sysconf(POSIX::_SC_CLK_TCK) / (time - $started);
	ok($busy < 0.2,
		sprintf('the launcher sleeps between retries (%.0f%% of a CPU)', 100 * $busy));
}

# The log of the server's run since this restart (after its last start-up).
$log = (split /database system is ready to accept connections/,
	slurp_file($node->logfile, $log_offset))[-1];
my @waiting = $log =~ /could not start the worker for database (\d+)/g;
my %times_logged;
$times_logged{$_}++ foreach @waiting;
ok(@waiting > 0 && !grep({ $_ > 1 } values %times_logged),
	'each database waiting for a slot is logged once, not at every retry ('
	  . join(', ', map { "$_: $times_logged{$_}" } sort keys %times_logged) . ')');
unlike($log, qr/terminated by signal|exited with exit code|reinitializing|PANIC/,
	'no process crashed or failed');
is(launcher_pid(), $launcher, 'the launcher is still the same process');

$node->stop;
done_testing();
