# PgBouncer in transaction pooling mode in front of the server: what works
# through it and what does not.
#
# Works: a named holder.  Acquired through PgBouncer, it is renewed from both
# server connections of the pool and from another client, keeping its term;
# leader_is_leader and leader_term answer for it; a write fenced with its term
# (BEGIN; leader_fence; INSERT; COMMIT) goes through; it is released, another
# holder takes the group with a higher term, and a write fenced with the old
# term fails with SQLSTATE 55000 and writes nothing.  A listener connected
# to the server directly, not through PgBouncer, sees one acquired and one
# released per term.
#
# Does not work: session-bound leadership and LISTEN.
#   - A session-bound lease taken through PgBouncer belongs to the server
#     connection that ran the statement, not to the client: the client
#     disconnecting ends nothing (no vacated; the lease stays held, its
#     session alive), and another client handed that server connection is
#     told it leads, renews and can release it, while a client on the other
#     server connection is told it does not lead.
#   - LISTEN through PgBouncer stays with the server connection that ran it.
#     The client that listened never receives a notification: PgBouncer drops
#     those that arrive while that server connection is idle in the pool.  A
#     client that never listened receives them when it holds that server
#     connection in a transaction at the time.
#
# What to do instead, besides named holders and a listener on a direct
# connection: a PgBouncer database in session pooling.  Through it a listener
# receives the events, and a session-bound lease ends when its client
# disconnects (PgBouncer's DISCARD ALL, while the server connection lives on).
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use LeaderTest;
use PgBouncer;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $timeout = $PostgreSQL::Test::Utils::timeout_default;

# ---- PgBouncer ----

my $node = preloaded_node('server');
$node->safe_psql('postgres',
	'CREATE TABLE ledger (term bigint NOT NULL, note text NOT NULL)');

# The number of server connections PgBouncer may open to the database: small,
# so that its clients share them.
my $pool_size = 2;
my $bouncer = PgBouncer->start_pgbouncer($node, pool_size => $pool_size);

like(($bouncer->run_psql('pgbouncer', 'SHOW VERSION'))[1],
	qr/PgBouncer \d+\.\d+/, 'pgbouncer answers on its admin console');
my ($mode) =
  map { $_->{value} } grep { $_->{key} eq 'pool_mode' } $bouncer->show('CONFIG');
is($mode, 'transaction', 'pgbouncer pools by transaction');

# A background psql through PgBouncer on its database $db (default postgres),
# as client $appname, that goes on after errors and reports SQLSTATEs.  (It
# is the node's background psql, connected elsewhere: psql takes the last -d.)
sub bouncer_session
{
	my ($appname, $db) = @_;
	my $s = $node->background_psql(
		'postgres',
		on_error_stop => 0,
		extra_params =>
		  [ '-d', $bouncer->connstr($db // 'postgres', $appname) ]);
	$s->query_safe('\set VERBOSITY verbose');
	return $s;
}

# Run $sql in background psql $s; returns (stdout, stderr) of just this.
sub run_sql
{
	my ($s, $sql) = @_;
	$s->{stderr} = '';
	my $out = $s->query($sql);
	my $err = $s->{stderr};
	$s->{stderr} = '';
	return ($out, $err);
}

# Like run_sql, but dies on an error.
sub run_ok
{
	my ($s, $sql) = @_;
	my ($out, $err) = run_sql($s, $sql);
	die "statement failed: $sql\n$err" if $err ne '';
	return $out;
}

# ---- choosing the server connection a client gets ----

# One client per server connection of the pool.  Each pins one connection
# with an open transaction: while all of them do, no other client gets any.
my @pinners = map { bouncer_session("pinner-$_") } 1 .. $pool_size;

# Pin every server connection; returns their backend pids, one per pinner.
sub pin_all
{
	return map { run_ok($_, 'BEGIN; SELECT pg_backend_pid()') } @pinners;
}

# The backend pids of the pool's server connections.
sub server_pids
{
	my @pids = pin_all();
	run_ok($_, 'COMMIT') foreach @pinners;
	return @pids;
}

# Run $sql in client $s on the server connection whose backend is $pid:
# every connection is pinned, then the one on $pid is let go, so it is the
# only one $s can get.  Returns (stdout, stderr).
sub run_on_server
{
	my ($pid, $s, $sql) = @_;
	my @pids = pin_all();
	my ($mine) = grep { $pids[$_] == $pid } 0 .. $#pids;
	die "no server connection with pid $pid in the pool (@pids)"
	  unless defined $mine;
	run_ok($pinners[$mine], 'COMMIT');
	my ($out, $err) = run_sql($s, $sql);
	run_ok($pinners[$_], 'COMMIT') foreach grep { $_ != $mine } 0 .. $#pids;
	return ($out, $err);
}

my @server_pids = server_pids();
is(scalar(keys %{ { map { $_ => 1 } @server_pids } }),
	$pool_size, "the pool has $pool_size server connections (@server_pids)");

# The other server connection than $pid's.
sub other_server
{
	my ($pid) = @_;
	my @others = grep { $_ != $pid } server_pids();
	die "pid $pid is not a server connection of the pool"
	  unless @others == $pool_size - 1;
	return $others[0];
}

# A listener connected to the server itself, not through PgBouncer.
my $listener = listen_leader_changed($node, 'postgres');

# ---- (a) named holders work through transaction pooling ----

my $app = bouncer_session('app');      # the program that leads as pod-7
my $other = bouncer_session('other');  # another client of the same role

my ($won, $pod7_term, $acquire_pid) = split /\|/,
  run_ok($app,
	"SELECT leader_try_acquire('nm', '1 hour', 'pod-7'), "
	  . "leader_term('nm', 'pod-7'), pg_backend_pid()");
is($won, 't', 'named: pod-7 acquires through pgbouncer');
like($pod7_term, qr/^\d+$/, 'named: pod-7 has a term');
is( $node->safe_psql(
		'postgres',
		"SELECT holder, kind FROM leader_status WHERE group_name = 'nm'"),
	'pod-7|named',
	'named: leader_status shows pod-7 as a named holder');

# Renew on the other server connection of the pool.
my $second_pid = other_server($acquire_pid);
my ($out, $err) = run_on_server($second_pid, $app,
	"SELECT leader_try_acquire('nm', '1 hour', 'pod-7'), "
	  . "leader_term('nm', 'pod-7'), pg_backend_pid()");
is($err, '', 'named: renewal on another server connection runs');
is( $out,
	"t|$pod7_term|$second_pid",
	'named: pod-7 renews from another server connection '
	  . "($second_pid, acquired on $acquire_pid) and keeps its term");
isnt($second_pid, $acquire_pid,
	'named: the renewal ran on a different server connection');

# Renew from another client, on the first server connection again.
($out, $err) = run_on_server($acquire_pid, $other,
	"SELECT leader_try_acquire('nm', '1 hour', 'pod-7'), "
	  . "leader_term('nm', 'pod-7'), pg_backend_pid()");
is($out, "t|$pod7_term|$acquire_pid",
	'named: another client renews pod-7 on the first server connection, '
	  . 'same term');

is( run_ok(
		$other,
		"SELECT leader_is_leader('nm', 'pod-7'), leader_term('nm', 'pod-7')"),
	"t|$pod7_term",
	'named: leader_is_leader and leader_term answer through pgbouncer');
is( run_ok(
		$other,
		"SELECT leader_is_leader('nm', 'pod-8'), leader_term('nm', 'pod-8')"),
	'f|',
	'named: and answer false and NULL for another holder');

# A fenced write, in one transaction through pgbouncer.
($out, $err) = run_sql($app,
	"BEGIN; SELECT leader_fence('nm', $pod7_term); "
	  . "INSERT INTO ledger VALUES ($pod7_term, 'pod-7 write'); COMMIT;");
is($err, '', 'named: a write fenced with the current term goes through');
is( $node->safe_psql('postgres',
		"SELECT term FROM ledger WHERE note = 'pod-7 write'"),
	$pod7_term,
	'named: the fenced write is in the table');

# Release through pgbouncer, and another holder takes over.
is(run_ok($app, "SELECT leader_release('nm', 'pod-7')"),
	't', 'named: pod-7 releases through pgbouncer');
($won, my $pod8_term) = split /\n/,
  run_ok($other,
	"BEGIN; SELECT leader_try_acquire('nm', '1 hour', 'pod-8'); "
	  . "SELECT leader_term('nm', 'pod-8'); COMMIT;");
is($won, 't', 'named: pod-8 acquires through pgbouncer after the release');
ok($pod8_term > $pod7_term,
	"named: pod-8's term $pod8_term is above pod-7's $pod7_term");

# pod-7, late, can neither renew nor write.
is(run_ok($app, "SELECT leader_try_acquire('nm', '1 hour', 'pod-7')"),
	'f', 'named: pod-7 can no longer renew');
($out, $err) = run_sql($app,
	"BEGIN; SELECT leader_fence('nm', $pod7_term); "
	  . "INSERT INTO ledger VALUES ($pod7_term, 'stale write'); COMMIT;");
like($err, qr/ERROR:  55000:/,
	'named: a write fenced with the stale term fails with SQLSTATE 55000');
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM ledger WHERE note = 'stale write'"),
	'0',
	'named: the stale write is not in the table');
($out, $err) = run_sql($other,
	"BEGIN; SELECT leader_fence('nm', $pod8_term); "
	  . "INSERT INTO ledger VALUES ($pod8_term, 'pod-8 write'); COMMIT;");
is($err, '', "named: pod-8's write fenced with its term goes through");
is(run_ok($other, "SELECT leader_release('nm', 'pod-8')"),
	't', 'named: pod-8 releases through pgbouncer');

my @events = events_so_far($node, 'postgres', $listener);
is_deeply(
	[ map { "$_->{event} $_->{term} $_->{holder}" } @events ],
	[
		"acquired $pod7_term pod-7", "released $pod7_term pod-7",
		"acquired $pod8_term pod-8", "released $pod8_term pod-8"
	],
	'named: the direct listener sees acquired and released once per term, '
	  . 'no event for renewals');

# ---- (b) session-bound leadership does not work through the pool ----

# The client takes a session-bound lease: the session is the server
# connection that ran the statement.
my $one = bouncer_session('app-one');
($won, my $bound_pid) = split /\|/,
  run_ok($one, "SELECT leader_try_acquire('sb', '1 hour'), pg_backend_pid()");
is($won, 't', 'session-bound: a client acquires through pgbouncer');
my ($bound_term, $status_pid, $holder) = split /\|/,
  $node->safe_psql('postgres',
	"SELECT term, pid, holder FROM leader_status WHERE group_name = 'sb'");
is($status_pid, $bound_pid,
	'session-bound: the lease belongs to the server connection that ran it');
is($holder, "app-one (pid $bound_pid)",
	"session-bound: its holder is shown with the client's application_name "
	  . 'and the server connection\'s pid');
is_deeply(
	summary(events_so_far($node, 'postgres', $listener)),
	["acquired $bound_term $bound_pid"],
	'session-bound: the direct listener sees it acquired');

# The number of clients of pgbouncer with application_name $appname.
sub bouncer_clients
{
	my ($appname) = @_;
	my @rows = $bouncer->show('CLIENTS');
	die 'SHOW CLIENTS has no column application_name'
	  unless @rows && exists $rows[0]{application_name};
	return scalar grep { $_->{application_name} eq $appname } @rows;
}

# The client disconnects.  Its server connection goes back to the pool as it
# is: nothing is reset in transaction pooling.
is(bouncer_clients('app-one'), 1, 'session-bound: pgbouncer lists the client');
$one->quit;
my $deadline = time + $timeout;
while (bouncer_clients('app-one'))
{
	die 'pgbouncer still lists the client that quit' if time > $deadline;
	usleep(20_000);
}
pass('session-bound: the client has disconnected from pgbouncer');
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE pid = $bound_pid"),
	'1',
	'session-bound: its server connection lives on in the pool');
is(lease_status($node, 'postgres', 'sb', qw(state session_alive pid term)),
	"held|t|$bound_pid|$bound_term",
	'session-bound: leader_status still shows the lease held by a live session');
is_deeply(summary(events_so_far($node, 'postgres', $listener)),
	[], 'session-bound: no vacated event: for the server the session goes on');

# Other clients: whichever gets that server connection leads.  Each pinner
# holds one server connection and asks.
my @pids = pin_all();
my ($on_bound) = grep { $pids[$_] == $bound_pid } 0 .. $#pids;
my ($on_other) = grep { $pids[$_] != $bound_pid } 0 .. $#pids;
ok(defined $on_bound && defined $on_other,
	'session-bound: one pinner holds the server connection that leads, '
	  . 'one the other');
is( run_ok(
		$pinners[$on_bound],
		"SELECT leader_is_leader('sb'), leader_term('sb')"),
	"t|$bound_term",
	'session-bound: a different client on that server connection is told '
	  . 'it leads');
is( run_ok(
		$pinners[$on_other],
		"SELECT leader_is_leader('sb'), leader_term('sb')"),
	'f|',
	'session-bound: a client on the other server connection is told '
	  . 'it does not');
is(run_ok($pinners[$on_other], "SELECT leader_try_acquire('sb', '1 hour')"),
	'f', 'session-bound: and cannot take it');
is(run_ok($pinners[$on_bound], "SELECT leader_try_acquire('sb', '1 hour')"),
	't', 'session-bound: the client on that server connection renews it');
run_ok($_, 'COMMIT') foreach @pinners;
is(lease_status($node, 'postgres', 'sb', qw(state pid term holder)),
	"held|$bound_pid|$bound_term|app-one (pid $bound_pid)",
	'session-bound: the renewal kept the lease, term and holder of the '
	  . 'client that left');

# Any client that lands on that server connection can also end it.
($out, $err) =
  run_on_server($bound_pid, $other, "SELECT leader_release('sb')");
is($out, 't',
	'session-bound: another client on that server connection releases it');
is_deeply(
	summary(events_so_far($node, 'postgres', $listener)),
	["released $bound_term $bound_pid"],
	'session-bound: the direct listener sees one released, no event for '
	  . 'the renewal');

# ---- (b) LISTEN does not work through transaction pooling ----

my $via = bouncer_session('listener-via-bouncer');
my $listen_pid = run_ok($via,
	'BEGIN; LISTEN leader_changed; SELECT pg_backend_pid(); COMMIT;');
like($listen_pid, qr/^\d+$/, 'LISTEN: a client listens through pgbouncer');
my $via_output = '';

# The number of notifications PgBouncer has received on a server connection
# that no client held, and dropped.
sub dropped_notifications
{
	my @lines = grep { /got packet 'A' from server when not linked/ }
	  split /\n/, slurp_file($bouncer->{log});
	return scalar @lines;
}
my $dropped_before = dropped_notifications();

# A change of leadership, made on a direct connection.
$node->safe_psql('postgres',
	"SELECT leader_try_acquire('ln', '1 hour', 'pod-x')");
$node->safe_psql('postgres', "SELECT leader_release('ln', 'pod-x')");
@events = events_so_far($node, 'postgres', $listener);
is_deeply(
	[ map { "$_->{group} $_->{event}" } @events ],
	[ 'ln acquired', 'ln released' ],
	'LISTEN: the direct listener sees the change');

# Both notifications and the marker of events_so_far reached the server
# connection that listened while it sat idle in the pool; PgBouncer dropped
# them.
$deadline = time + $timeout;
until (dropped_notifications() >= $dropped_before + 3)
{
	die 'pgbouncer did not receive the notifications' if time > $deadline;
	usleep(20_000);
}
pass('LISTEN: pgbouncer received the notifications on an idle server '
	  . 'connection and dropped them');

# Give the client that listened every chance: a few statements, the last on
# the very server connection that ran its LISTEN.
$via_output .= run_ok($via, 'SELECT 1') . "\n" foreach 1 .. 3;
($out, $err) = run_on_server($listen_pid, $via, 'SELECT pg_backend_pid()');
like($out, qr/^$listen_pid$/m,
	'LISTEN: the client that listened runs a statement on the server '
	  . 'connection that ran its LISTEN');
$via_output .= $out;
unlike($via_output, qr/Asynchronous notification/,
	'LISTEN: the client that listened through pgbouncer receives no '
	  . 'notification');

# The LISTEN stays with the server connection, whichever client it serves.
($out, $err) =
  run_on_server($listen_pid, $other, 'SELECT pg_listening_channels()');
is($out, 'leader_changed',
	'LISTEN: another client on that server connection finds it listening');

# A client that never listened gets the notifications if it holds that server
# connection in a transaction when they arrive: the server sends them as the
# transaction ends, and PgBouncer passes them to the client it serves.
@pids = pin_all();
($on_bound) = grep { $pids[$_] == $listen_pid } 0 .. $#pids;
($on_other) = grep { $pids[$_] != $listen_pid } 0 .. $#pids;
$node->safe_psql('postgres',
	"SELECT leader_try_acquire('ln', '1 hour', 'pod-y')");
$node->safe_psql('postgres', "SELECT leader_release('ln', 'pod-y')");
@events = events_so_far($node, 'postgres', $listener);
is_deeply(
	[ map { "$_->{group} $_->{event} $_->{holder}" } @events ],
	[ 'ln acquired pod-y', 'ln released pod-y' ],
	'LISTEN: the direct listener sees the second change');
my @stray_events =
  grep { defined $_->{event} }    # not the markers of events_so_far
  map  { decode_json($_) }
  map  { /^Asynchronous notification "leader_changed" with payload "(.*)" received/ }
  split /\n/, run_ok($pinners[$on_bound], 'COMMIT');
is_deeply(
	[ map { "$_->{group} $_->{event} $_->{holder}" } @stray_events ],
	[ 'ln acquired pod-y', 'ln released pod-y' ],
	'LISTEN: a client that never listened receives them, because it held '
	  . 'the listening server connection');
unlike(run_ok($pinners[$on_other], 'COMMIT'), qr/Asynchronous notification/,
	'LISTEN: the client on the other server connection receives none');
$via_output = run_ok($via, 'SELECT 1');
unlike($via_output, qr/Asynchronous notification/,
	'LISTEN: and the client that listened still receives none');

# ---- (c) what to do instead: a database of PgBouncer in session pooling ----

# PgBouncer's database postgres_session pools by session: a client keeps its
# server connection until it disconnects, and PgBouncer then runs DISCARD ALL
# on it before another client gets it.
my $sess_listener = bouncer_session('listener-session-pool', 'postgres_session');
$sess_listener->query_safe('LISTEN leader_changed');
my $sess_app = bouncer_session('app-session', 'postgres_session');
($won, my $sess_pid) = split /\|/,
  run_ok($sess_app,
	"SELECT leader_try_acquire('ss', '1 hour'), pg_backend_pid()");
is($won, 't', 'session pooling: a client acquires session-bound');
@events = wait_for_events($sess_listener,
	sub { grep { $_->{group} eq 'ss' && $_->{event} eq 'acquired' } @_ });
my ($sess_term) = map { $_->{term} }
  grep { $_->{group} eq 'ss' && $_->{event} eq 'acquired' } @events;
is_deeply(summary(grep { $_->{group} eq 'ss' } @events),
	["acquired $sess_term $sess_pid"],
	'session pooling: a listener through pgbouncer receives acquired');

$sess_app->quit;
@events = wait_for_events($sess_listener,
	sub { grep { $_->{group} eq 'ss' && $_->{event} eq 'vacated' } @_ });
is_deeply(summary(grep { $_->{group} eq 'ss' } @events),
	["vacated $sess_term $sess_pid"],
	'session pooling: when the client disconnects, the listener through '
	  . 'pgbouncer receives vacated');
is(lease_status($node, 'postgres', 'ss', 'state'),
	'vacant', 'session pooling: leader_status shows the lease vacant');
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE pid = $sess_pid"),
	'1',
	'session pooling: though the server connection lives on in the pool '
	  . '(DISCARD ALL ended the leadership)');
is_deeply(
	summary(
		grep { $_->{group} eq 'ss' }
		  events_so_far($node, 'postgres', $listener)),
	[ "acquired $sess_term $sess_pid", "vacated $sess_term $sess_pid" ],
	'session pooling: the direct listener sees the same two events');

# ---- the end ----

$_->quit foreach ($app, $other, $via, $sess_listener, @pinners);
$listener->quit;
# kill_kill sends SIGTERM and answers whether it needed SIGKILL after it.
ok($bouncer->stop, "pgbouncer (pid $bouncer->{pid}) stops on SIGTERM");
$node->stop;
done_testing();
