# pg_leader watch, status and release, and the command line shared by every
# subcommand:
#   - status prints the server's leaders, terms and expiries, for every group
#     or one;
#   - watch prints each leader_changed event as it happens, readably or (with
#     --json) as sent, for every group or one, and reconnects after its
#     session is terminated;
#   - release ends a named holder's leadership, or (--force) anyone's, and
#     exits 1 when it released nothing;
#   - connection by -d/-h/-p/-U, by a connection string and by PG* variables;
#   - --help and --version; bad arguments (status 2), an unreachable server
#     (3) and a database without the extension (4) get clear messages.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use LeaderTest;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# pg_leader_node deletes PGAPPNAME: pg_leader's sessions show as
# application_name "pg_leader".
my $node = pg_leader_node('pg_leader_cli');
$node->safe_psql('postgres', 'CREATE DATABASE plain');

my $pg_leader = $node->config_data('--bindir') . '/pg_leader';
my $connstr = $node->connstr('postgres');
my @conn = ('-h', $node->host, '-p', $node->port, '-d', 'postgres');
my $timeout = $PostgreSQL::Test::Utils::timeout_default;

# Run pg_leader with @args; returns (exit code, stdout, stderr).
sub pg_leader
{
	my @args = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ $pg_leader, @args ], '<', \undef, '>', \$out, '2>', \$err,
		IPC::Run::timeout($timeout));
	return ($? >> 8, $out, $err);
}

# Check one invocation's exit code, and stdout and stderr against patterns.
sub check
{
	my ($args, $code, $out_re, $err_re, $what) = @_;
	my ($rc, $out, $err) = pg_leader(@$args);
	is($rc, $code, "$what: exit code $code");
	like($out, $out_re, "$what: output") if defined $out_re;
	like($err, $err_re, "$what: message") if defined $err_re;
	return $out;
}

# ---- help, version, bad arguments ----

check(['--help'], 0, qr/Usage:.*run --group G.*watch.*status.*release.*Exit status/s,
	undef, '--help');
check([ 'run', '--help' ], 0, qr/LEADER_TERM/, undef, 'run --help');
check(['--version'], 0, qr/^pg_leader \(leader\) \d+\.\d+/, undef, '--version');

my $usage = qr/Try "pg_leader --help" for more information/;
check([], 2, undef, qr/no subcommand given.*\n$usage/s, 'no subcommand');
check(['elect'], 2, undef, qr/unknown subcommand "elect"/, 'unknown subcommand');
check([ 'status', '--bogus' ], 2, undef, qr/invalid option "--bogus"/, 'unknown option');
check([ 'status', '--group' ], 2, undef, qr/option "--group" needs a value/,
	'option without its value');
check([ 'run', '--', 'true' ], 2, undef, qr/run: --group is required/, 'run without --group');
check([ 'run', '--group', 'g' ], 2, undef, qr/run: no command given/, 'run without a command');
check([ 'run', '--group', '', '--', 'true' ], 2, undef,
	qr/the group name must not be empty/, 'empty group');
check([ 'run', '--group', 'x' x 201, '--', 'true' ], 2, undef,
	qr/the group name is 201 bytes long; the limit is 200/, 'group name too long');
check([ 'run', '--group', 'g', '--ttl', '15 parsecs', '--', 'true' ], 2, undef,
	qr/invalid duration "15 parsecs" for --ttl/, 'bad duration');
check([ 'run', '--group', 'g', '--wait', '-1s', '--', 'true' ], 2, undef,
	qr/invalid duration "-1s" for --wait/, 'negative duration');
check([ 'release', '--holder', 'h' ], 2, undef, qr/release: --group is required/,
	'release without --group');
check([ 'status', 'extra' ], 2, undef, qr/unexpected argument "extra"/, 'extra argument');

# ---- the server: unreachable, without the extension ----

my $dead_port = PostgreSQL::Test::Cluster::get_free_port();
check([ 'status', '-h', $node->host, '-p', $dead_port ], 3, undef,
	qr/cannot connect to the server: .*$dead_port/s, 'unreachable server (status)');
check([ 'run', '-h', $node->host, '-p', $dead_port, '--group', 'g', '--', 'true' ], 3,
	undef, qr/cannot connect to the server/, 'unreachable server (run)');
check([ 'watch', '-h', $node->host, '-p', $dead_port ], 3,
	undef, qr/cannot connect to the server/, 'unreachable server (watch)');
check([ 'status', '-h', $node->host, '-p', $node->port, '-d', 'plain' ], 4, undef,
	qr/the extension "leader" is not installed in database "plain".*CREATE EXTENSION leader/s,
	'database without the extension (status)');
check([ 'run', '-d', $node->connstr('plain'), '--group', 'g', '--', 'true' ], 4, undef,
	qr/the extension "leader" is not installed in database "plain"/,
	'database without the extension (run)');

# ---- status ----

my $named = session($node, 'named');
$named->query_safe("SELECT leader_try_acquire('alpha', '1 hour', 'pod-7')");
my $alpha_term = $node->safe_psql('postgres',
	"SELECT term FROM leader_status WHERE group_name = 'alpha'");
my $bound = session($node, 'web-2');
$bound->query_safe("SELECT leader_try_acquire('beta', '1 hour')");
my $beta_term = $node->safe_psql('postgres',
	"SELECT term FROM leader_status WHERE group_name = 'beta'");
my $beta_holder = "web-2 (pid $bound->{backend_pid})";

my $out = check([ 'status', @conn ], 0, qr/^GROUP +STATE +TERM +HOLDER +KIND +EXPIRES\n/,
	undef, 'status');
like($out, qr/^alpha +held +$alpha_term +pod-7 +named +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \S+ \(in \d+\.\d s\)$/m,
	'status: the named leader, its term and expiry');
like($out, qr/^beta +held +$beta_term +\Q$beta_holder\E +session +\d{4}-/m,
	'status: the session-bound leader');

$out = check([ 'status', '--group', 'beta', '-d', $connstr ], 0, qr/^beta /m, undef,
	'status --group, with a connection string');
unlike($out, qr/alpha/, 'status --group: only that group');
check([ 'status', '--group', 'nobody', @conn ], 0, qr/\(no group "nobody"\)/, undef,
	'status of an unknown group');

{
	# Connection parameters from the environment only.
	local $ENV{PGHOST} = $node->host;
	local $ENV{PGPORT} = $node->port;
	local $ENV{PGDATABASE} = 'postgres';
	check(['status'], 0, qr/^alpha +held/m, undef, 'status with PG* variables');
}

# ---- watch ----

my ($w_out, $w_err, $j_out, $j_err) = ('', '', '', '');
my $watch = IPC::Run::start([ $pg_leader, 'watch', @conn ],
	'<', \undef, '>', \$w_out, '2>', \$w_err);
my $watch_json = IPC::Run::start([ $pg_leader, 'watch', '--json', '--group', 'alpha', @conn ],
	'<', \undef, '>', \$j_out, '2>', \$j_err);
foreach my $w ([ $watch, \$w_err ], [ $watch_json, \$j_err ])
{
	pump_until($w->[0], IPC::Run::timeout($timeout), $w->[1], qr/watching/)
	  or die 'watch did not start';
}
# Both listen before anything happens.
ok( $node->poll_query_until(
		'postgres', q{
		SELECT count(*) = 2 FROM pg_stat_activity
		WHERE application_name = 'pg_leader' AND query = 'LISTEN leader_changed'}),
	'watch: both watchers listen');

$named->query_safe("SELECT leader_release('alpha', 'pod-7')");
$named->query_safe("SELECT leader_try_acquire('alpha', '1 hour', 'pod-8')");
my $alpha_term2 = $alpha_term + 1;
$bound->query_safe("SELECT leader_release('beta')");

pump_until($watch, IPC::Run::timeout($timeout), \$w_out, qr/"beta" term $beta_term .* released/)
  or diag("watch output: $w_out");
like($w_out,
	qr/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}  "alpha" term $alpha_term of "pod-7" released\n/m,
	'watch: a release, readable');
like($w_out,
	qr/^\S+ \S+  "alpha" acquired by "pod-8", term $alpha_term2, lease until \d{4}-\S+\n/m,
	'watch: an acquisition, readable');
like($w_out, qr/"beta" term $beta_term of "\Q$beta_holder\E" released\n/,
	'watch: the release of a session-bound leader');

pump_until($watch_json, IPC::Run::timeout($timeout), \$j_out, qr/"acquired".*\n/)
  or diag("watch --json output: $j_out");
my @json = map { decode_json($_) } split /\n/, $j_out;
is_deeply(
	[ map { "$_->{group} $_->{event} $_->{holder} $_->{term}" } @json ],
	[ "alpha released pod-7 $alpha_term", "alpha acquired pod-8 $alpha_term2" ],
	'watch --json --group: the raw events of that group only');

# watch reconnects after its session is terminated.
$node->safe_psql('postgres', q{
	SELECT pg_terminate_backend(pid) FROM pg_stat_activity
	WHERE application_name = 'pg_leader' AND query = 'LISTEN leader_changed'});
foreach my $w ([ $watch, \$w_err ], [ $watch_json, \$j_err ])
{
	pump_until($w->[0], IPC::Run::timeout($timeout), $w->[1], qr/reconnected/)
	  or die "watch did not reconnect: ${$w->[1]}";
}
like($w_err, qr/connection lost; reconnecting/, 'watch: says the connection was lost');
$j_out = '';
$named->query_safe("SELECT leader_release('alpha', 'pod-8')");
pump_until($watch_json, IPC::Run::timeout($timeout), \$j_out, qr/"released"/)
  or diag("watch --json output: $j_out");
like($j_out, qr/"event":"released","holder":"pod-8"/,
	'watch: after reconnecting, events arrive again');

$watch->signal('TERM');
$watch->finish;
is($watch->result(0), 0, 'watch: exits 0 on SIGTERM');
$watch_json->signal('INT');
$watch_json->finish;
is($watch_json->result(0), 0, 'watch: exits 0 on SIGINT');

# ---- release ----

$named->query_safe("SELECT leader_try_acquire('gamma', '1 hour', 'pod-9')");
check([ 'release', '--group', 'gamma', '--holder', 'pod-9', @conn ], 0,
	qr/released "gamma"/, undef, 'release of a named holder');
is(lease_status($node, 'postgres', 'gamma', 'state'), 'vacant', 'release: the group is vacant');
check([ 'release', '--group', 'gamma', '--holder', 'pod-9', @conn ], 1, undef,
	qr/"pod-9" does not lead "gamma"/, 'release of a holder that does not lead');
$bound->query_safe("SELECT leader_try_acquire('gamma', '1 hour')");
check([ 'release', '--group', 'gamma', @conn ], 1, undef,
	qr/nothing released: a session-bound leadership of "gamma" ends only with its own session/,
	'release of a session-bound leader from elsewhere');
check([ 'release', '--group', 'gamma', '--force', @conn ], 0, qr/released "gamma"/, undef,
	'release --force');
is(lease_status($node, 'postgres', 'gamma', 'state'), 'vacant',
	'release --force: the group is vacant');

$named->quit;
$bound->quit;
$node->stop;
done_testing();
