# pg_leader run: a command runs only while its pg_leader leads the group.
#
# Each command here is "beat.sh": it appends "TERM PID NANOSECONDS" to a file
# of its own every 100 ms, where TERM is the LEADER_TERM it was given.  Then:
#   - a first run leads and beats with the group's current term; a second run
#     waits inside leader_acquire (woken by the server, not polling) without
#     starting its command;
#   - the second takes over when the first pg_leader is killed (SIGKILL), the
#     next when that one's command exits (its status passed through), and the
#     next when that one is asked to stop (SIGTERM); no two commands ever beat
#     at the same time, and every term is higher than the last;
#   - leadership lost stops the command and exits with status 5: a forced
#     release, pg_terminate_backend() of the leader's session, and a server
#     that stops answering (the lease runs out by pg_leader's own clock);
#   - a candidate whose connection drops reconnects and waits on;
#   - with --rejoin, a run that lost leadership waits and leads again;
#   - a renewed lease outlives its TTL; --grace bounds a command that ignores
#     SIGTERM; --wait gives up with status 6.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use LeaderTest;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

# pg_leader_node deletes PGAPPNAME: pg_leader's sessions show as
# application_name "pg_leader".
my $node = pg_leader_node('pg_leader_run');
worker_pid($node, 'postgres');

my $pg_leader = $node->config_data('--bindir') . '/pg_leader';
my $connstr = $node->connstr('postgres');
my $dir = PostgreSQL::Test::Utils::tempdir;
my $timeout = $PostgreSQL::Test::Utils::timeout_default;

# How long a lost leadership may take to stop the command, at most.
my $STOP_BOUND = 10;

my $beat = "$dir/beat.sh";
open(my $fh, '>', $beat) or die "could not write $beat: $!";
print $fh <<'EOF';
#!/bin/sh
# beat.sh FILE [ignore-term]: every 100 ms append "LEADER_TERM PID NANOSECONDS"
# to FILE, until FILE.stop exists; then exit 3.
[ "$2" = ignore-term ] && trap '' TERM
while [ ! -e "$1.stop" ]; do
	echo "$LEADER_TERM $$ $(date +%s%N)" >> "$1"
	sleep 0.1
done
exit 3
EOF
close($fh);
chmod 0755, $beat;

# Start "pg_leader run" with @args and the beat command writing to $dir/$name.
sub start_run
{
	my ($name, @args) = @_;
	my %r = (name => $name, file => "$dir/$name", out => '', err => '');
	my @extra = $args[-1] && $args[-1] eq 'ignore-term' ? (pop @args) : ();
	$r{h} = IPC::Run::start(
		[
			$pg_leader, 'run', '-d', $connstr, @args, '--',
			$beat, $r{file}, @extra
		],
		'<', \undef, '>', \$r{out}, '2>', \$r{err});
	return \%r;
}


# The lines of a beat file as [term, pid, ns].
sub beats
{
	my ($file) = @_;
	open(my $in, '<', $file) or return ();
	my @lines = map { chomp; [ split / / ] } <$in>;
	close($in);
	return grep { @$_ == 3 } @lines;
}


# Wait until $r's pg_leader says it leads; returns its term.
sub wait_leading
{
	my ($r, $group) = @_;
	pump_until($r->{h}, IPC::Run::timeout($timeout), \$r->{err},
		qr/leading "\Q$group\E" as .*, term (\d+)/)
	  or die "$r->{name} did not lead $group: $r->{err}";
	$r->{err} =~ /term (\d+)/;
	my $term = $1;
	wait_until(sub { my @lines = beats($r->{file}); @lines > 0 },
		"$r->{name}: its command beats");
	return $term;
}

sub current_term
{
	my ($group) = @_;
	return $node->safe_psql('postgres',
		"SELECT term FROM leader_status WHERE group_name = '$group' AND state = 'held'"
	);
}

# A run that waits: its backend sleeps in leader_acquire, its command has not started.
sub check_waiting
{
	my ($r, $what) = @_;
	ok( $node->poll_query_until(
			'postgres', qq{
			SELECT count(*) = 1 FROM pg_stat_activity
			WHERE application_name = 'pg_leader' AND state = 'active'
			  AND wait_event_type = 'Extension' AND query LIKE '%leader_acquire%'}
		),
		"$what: the candidate sleeps in leader_acquire");
	ok(!-e $r->{file}, "$what: the candidate's command has not started");
}

# ---- a chain of takeovers ----

my %max_term;

my $run_a = start_run('a', '--group', 'chain', '--ttl', '5s');
my $term_a = wait_leading($run_a, 'chain');
is($term_a, current_term('chain'), 'a: LEADER_TERM is the group\'s current term');
see_term(\%max_term, 'chain', $term_a, 'run a');
my ($first) = beats($run_a->{file});
is($first->[0], $term_a, 'a: its command beats with LEADER_TERM');

my $run_b = start_run('b', '--group', 'chain', '--ttl', '5s');
check_waiting($run_b, 'b');

# 1. the leader's pg_leader is killed: its command dies with it, b takes over.
my $a_cmd_pid = (beats($run_a->{file}))[0][1];
kill 'KILL', run_pid($run_a);
my $term_b = wait_leading($run_b, 'chain');
see_term(\%max_term, 'chain', $term_b, 'run b, after a was killed');
is($term_b, current_term('chain'), 'b: LEADER_TERM is the group\'s current term');
wait_until(sub { !kill(0, $a_cmd_pid) }, 'a: its command is gone with it');
$run_a->{h}->finish;

my $run_c = start_run('c', '--group', 'chain', '--ttl', '5s');
check_waiting($run_c, 'c');

# 2. the leader's command exits: its pg_leader exits with its status, c takes over.
open(my $stop, '>', "$run_b->{file}.stop") or die;
close($stop);
is(exit_code($run_b), 3, "b: pg_leader exits with its command's status");
like($run_b->{err}, qr/the command exited with status 3; released "chain"/,
	'b: says its command exited and it released the group');
my $term_c = wait_leading($run_c, 'chain');
see_term(\%max_term, 'chain', $term_c, 'run c, after b\'s command exited');

my $run_d = start_run('d', '--group', 'chain', '--ttl', '5s');
check_waiting($run_d, 'd');

# 3. the leader is asked to stop: it stops its command, releases, exits.
kill 'TERM', run_pid($run_c);
is(exit_code($run_c), 143, 'c: after SIGTERM, exits with its command\'s status (SIGTERM: 143)');
my $term_d = wait_leading($run_d, 'chain');
see_term(\%max_term, 'chain', $term_d, 'run d, after c was asked to stop');

# No two commands ever beat at once: each run's beats come after the last
# beat of the run before it, and carry its term.
my @runs = ([ $run_a, $term_a ], [ $run_b, $term_b ], [ $run_c, $term_c ], [ $run_d, $term_d ]);
for my $run_i (0 .. $#runs)
{
	my ($r, $term) = @{ $runs[$run_i] };
	my @lines = beats($r->{file});
	is_deeply([ grep { $_->[0] ne $term } @lines ], [],
		"$r->{name}: every beat carries its term $term");
	next if $run_i == 0;
	my $prev = $runs[ $run_i - 1 ][0];
	my $prev_last = (beats($prev->{file}))[-1][2];
	cmp_ok($lines[0][2], '>', $prev_last,
		"$r->{name}: its first beat comes after $prev->{name}'s last");
}

# ---- a candidate whose connection drops reconnects and waits on ----

my $run_w = start_run('w', '--group', 'chain', '--ttl', '5s');
check_waiting($run_w, 'w');
my $w_backend = $node->safe_psql('postgres', qq{
	SELECT pid FROM pg_stat_activity
	WHERE application_name = 'pg_leader' AND wait_event_type = 'Extension'
	  AND query LIKE '%leader_acquire%'});
$node->safe_psql('postgres', "SELECT pg_terminate_backend($w_backend)");
pump_until($run_w->{h}, IPC::Run::timeout($timeout), \$run_w->{err},
	qr/connection lost; reconnecting as a candidate/)
  or die "w did not notice its lost connection: $run_w->{err}";
pass('w: notices its connection was lost and reconnects as a candidate');
ok( $node->poll_query_until(
		'postgres', qq{
		SELECT count(*) = 1 FROM pg_stat_activity
		WHERE application_name = 'pg_leader' AND wait_event_type = 'Extension'
		  AND query LIKE '%leader_acquire%' AND pid <> $w_backend}),
	'w: waits again in leader_acquire, in a new session');
ok(!-e $run_w->{file}, 'w: its command has not started');
# d leads "chain" (the last of the chain): when it is asked to stop, w leads.
kill 'TERM', run_pid($run_d);
is(exit_code($run_d), 143, 'd: after SIGTERM, exits with its command\'s status');
my $term_w = wait_leading($run_w, 'chain');
see_term(\%max_term, 'chain', $term_w, 'run w, after reconnecting');

# ---- leadership lost: the command is stopped, pg_leader exits 5 ----

sub check_lost
{
	my ($r, $what, $reason, $started) = @_;
	is(exit_code($r), 5, "$what: pg_leader exits with status 5");
	like($r->{err}, $reason, "$what: it says why");
	my $elapsed = time - $started;
	cmp_ok($elapsed, '<', $STOP_BOUND,
		"$what: the command was stopped within ${STOP_BOUND}s (took "
		  . sprintf('%.3f', $elapsed) . 's)');
	my $pid = (beats($r->{file}))[0][1];
	ok(!kill(0, $pid), "$what: its command is gone");
	return;
}

# forced release
my $started = time;
$node->safe_psql('postgres', "SELECT leader_force_release('chain')");
check_lost($run_w, 'forced release', qr/lost: the server reports the term force-released/,
	$started);

# pg_terminate_backend of the leader's session
my $run_e = start_run('e', '--group', 'term', '--ttl', '5s');
wait_leading($run_e, 'term');
my $e_backend = $node->safe_psql('postgres',
	"SELECT pid FROM leader_status WHERE group_name = 'term'");
$started = time;
$node->safe_psql('postgres', "SELECT pg_terminate_backend($e_backend)");
check_lost($run_e, 'pg_terminate_backend', qr/lost: the connection to the server was lost/,
	$started);

# a server that stops answering: the leader's backend is frozen, so no
# renewal is confirmed and the lease runs out by pg_leader's own clock.
my $run_f = start_run('f', '--group', 'frozen', '--ttl', '2s');
wait_leading($run_f, 'frozen');
my $f_backend = $node->safe_psql('postgres',
	"SELECT pid FROM leader_status WHERE group_name = 'frozen'");
$started = time;
freeze_when_idle($node, $f_backend, 'ClientRead');
check_lost($run_f, 'frozen backend',
	qr/lost: the lease ran out before the server confirmed a renewal/, $started);
kill 'CONT', $f_backend;

# --rejoin: after a loss the run waits to lead again, and starts its command
# anew with the new term.
my $run_k = start_run('k', '--group', 'rejoin', '--ttl', '5s', '--rejoin');
my $term_k = wait_leading($run_k, 'rejoin');
$node->safe_psql('postgres', "SELECT leader_force_release('rejoin')");
pump_until($run_k->{h}, IPC::Run::timeout($timeout), \$run_k->{err},
	qr/leading "rejoin" as .*, term (?!$term_k\b)\d+/)
  or diag("rejoin: $run_k->{err}");
like($run_k->{err}, qr/lost: the server reports the term force-released.*waiting to lead "rejoin" again/s,
	'--rejoin: the loss is reported, then it waits again');
my $term_k2 = current_term('rejoin');
cmp_ok($term_k2, '>', $term_k, '--rejoin: it leads again, with a new term');
wait_until(sub { grep { $_->[0] eq $term_k2 } beats($run_k->{file}) },
	'--rejoin: the command runs again, with the new LEADER_TERM');
kill 'TERM', run_pid($run_k);
is(exit_code($run_k), 143, '--rejoin: SIGTERM still ends it');

# ---- renewal, grace, --wait ----

# A lease of 1 s is renewed: the same run leads on, with the same term, past its TTL.
my $run_g = start_run('g', '--group', 'renew', '--ttl', '1s');
my $term_g = wait_leading($run_g, 'renew');
ok( $node->poll_query_until(
		'postgres', qq{
		SELECT renewed_at > acquired_at + interval '2 s' AND state = 'held'
		FROM leader_status WHERE group_name = 'renew'}),
	'renew: a 1 s lease is still held after more than 2 s of renewals');
is(current_term('renew'), $term_g, 'renew: renewals keep the term');
unlike($run_g->{err}, qr/lost/, 'renew: no loss reported');

# --grace: a command that ignores SIGTERM is killed when the grace is over.
my $run_h = start_run('h', '--group', 'grace', '--grace', '1s', 'ignore-term');
wait_leading($run_h, 'grace');
$started = time;
kill 'TERM', run_pid($run_h);
is(exit_code($run_h), 137, 'grace: a command that ignores SIGTERM is SIGKILLed (137)');
cmp_ok(time - $started, '>=', 0.9, 'grace: not before the grace of 1 s');
like($run_h->{err}, qr/did not stop within the grace period; killing it/,
	'grace: it says so');

# --wait: the group is held by another session; pg_leader gives up with status 6.
kill 'TERM', run_pid($run_g);
exit_code($run_g);
my $holder = session($node, 'holder');
$holder->query_safe("SELECT leader_try_acquire('renew', '1 hour')");
my $run_i = start_run('i', '--group', 'renew', '--wait', '500ms');
is(exit_code($run_i), 6, '--wait: gives up with status 6');
like($run_i->{err}, qr/did not lead "renew" within the --wait time/, '--wait: says so');
ok(!-e $run_i->{file}, '--wait: its command never started');

# A candidate interrupted while waiting (SIGINT) exits 130 and never leads.
my $run_j = start_run('j', '--group', 'renew');
check_waiting($run_j, 'interrupted candidate');
kill 'INT', run_pid($run_j);
is(exit_code($run_j), 130, 'interrupted candidate: exits 130');
$holder->quit;

$node->stop;
done_testing();
