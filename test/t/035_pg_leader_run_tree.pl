# pg_leader run leaves nothing behind: every process its command started, in
# the foreground or the background, in another session even, is gone before
# pg_leader releases, reports a loss, or (killed itself) lets the server end
# its session; and a command that cannot be executed takes no term.
#
# The command here is "tree.sh": it starts a background child that moves to
# a session of its own (setsid), then waits for a foreground child.  Both
# children append "PID NANOSECONDS" to a file every 50 ms; the background one
# stops slowly: after SIGTERM it beats on for 0.5 s (or, "stubborn", ignores
# SIGTERM).  Then:
#   - pg_leader run is killed (SIGKILL): all three processes are gone when
#     the waiting candidate leads, and the candidate's command beats only
#     after the last beat of any of them (though one took 0.5 s to stop);
#   - the same when pg_leader is asked to stop (SIGTERM), and when the
#     command exits by itself and leaves its background child running;
#   - a killed pg_leader whose tree ignores SIGTERM, with a grace far longer
#     than the lease: the tree is killed when the lease runs out, before the
#     candidate leads; session-bound, and as a named holder;
#   - leadership lost (a forced release, pg_terminate_backend of its
#     session): the whole tree is gone when pg_leader exits with status 5;
#   - a command that is not executable, or not there: status 126 or 127,
#     before connecting, and the group's lease row stays as it was.
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

my $node = pg_leader_node('pg_leader_run_tree');
worker_pid($node, 'postgres');

my $pg_leader = $node->config_data('--bindir') . '/pg_leader';
my $connstr = $node->connstr('postgres');
my $dir = PostgreSQL::Test::Utils::tempdir;
my $timeout = $PostgreSQL::Test::Utils::timeout_default;

my $tree = "$dir/tree.sh";
open(my $fh, '>', $tree) or die "could not write $tree: $!";
print $fh <<'EOF';
#!/bin/sh
# tree.sh DIR [MODE]: writes its pid to DIR/main.pid, starts a background
# child in a session of its own, and waits for a foreground child.  Both beat
# ("PID NANOSECONDS" every 50 ms) into DIR/fg and DIR/bg.  The background
# child beats 0.5 s more after SIGTERM; with MODE "stubborn" it ignores
# SIGTERM; with MODE "exit" the foreground child and the command exit once
# DIR/exit exists, leaving the background child running.
dir=$1 mode=$2 role=${3:-main}
beat() { echo "$$ $(date +%s%N)" >> "$dir/$role"; }
case $role in
main)
	# (Not to the test's pipes: a survivor would keep them open.)
	exec > "$dir/out" 2>&1
	echo $$ > "$dir/main.pid"
	setsid "$0" "$dir" "$mode" bg &
	"$0" "$dir" "$mode" fg
	exit $? ;;
fg)
	while [ "$mode" != exit ] || [ ! -e "$dir/exit" ]; do
		beat; sleep 0.05
	done ;;
bg)
	left=-1
	if [ "$mode" = stubborn ]; then trap '' TERM; else trap 'left=10' TERM; fi
	while [ $left -ne 0 ]; do
		beat; sleep 0.05
		[ $left -gt 0 ] && left=$((left - 1))
	done ;;
esac
exit 0
EOF
close($fh);
chmod 0755, $tree;

# Start "pg_leader run" with @args and tree.sh in a directory of its own.
sub start_run
{
	my ($name, $mode, @args) = @_;
	my %r = (name => $name, dir => "$dir/$name", out => '', err => '');
	mkdir $r{dir} or die "could not create $r{dir}: $!";
	$r{h} = IPC::Run::start(
		[ $pg_leader, 'run', '-d', $connstr, @args, '--', $tree, $r{dir}, $mode ],
		'<', \undef, '>', \$r{out}, '2>', \$r{err});
	return \%r;
}


# The beats of $r's child $role ("fg" or "bg") as [pid, ns].
sub beats
{
	my ($r, $role) = @_;
	open(my $in, '<', "$r->{dir}/$role") or return ();
	my @lines = map { chomp; [ split / / ] } <$in>;
	close($in);
	return grep { @$_ == 2 } @lines;
}

sub first_beat { my @b = beats(@_); return @b ? $b[0][1] : undef; }
sub last_beat  { my @b = beats(@_); return @b ? $b[-1][1] : undef; }

# Wait until $r's pg_leader leads $group and its tree beats; returns the term.
sub wait_leading
{
	my ($r, $group) = @_;
	pump_until($r->{h}, IPC::Run::timeout($timeout), \$r->{err},
		qr/leading "\Q$group\E" as .*, term (\d+)/)
	  or die "$r->{name} did not lead $group: $r->{err}";
	$r->{err} =~ /term (\d+)/;
	$r->{term} = $1;
	$r->{group} = $group;
	wait_until(sub { beats($r, 'fg') && beats($r, 'bg') && -s "$r->{dir}/main.pid" },
		"$r->{name}: its command and both its children beat");
	open(my $in, '<', "$r->{dir}/main.pid") or die;
	chomp(my $main = <$in>);
	close($in);
	$r->{pids} = { main => $main, fg => (beats($r, 'fg'))[0][0], bg => (beats($r, 'bg'))[0][0] };
	return $r->{term};
}


# A candidate that waits: its backend sleeps in leader_acquire.
sub check_waiting
{
	my ($what) = @_;
	ok( $node->poll_query_until(
			'postgres', qq{
			SELECT count(*) = 1 FROM pg_stat_activity
			WHERE application_name = 'pg_leader' AND state = 'active'
			  AND wait_event_type = 'Extension' AND query LIKE '%leader_acquire%'}
		),
		"$what: the candidate sleeps in leader_acquire");
	return;
}

# The pids of every process whose environment is that of $r's leadership
# (its command and whatever it started, exec'd since).
sub tree_pids
{
	my ($r) = @_;
	my @pids;
	opendir(my $proc, '/proc') or die;
	for my $pid (grep { /^\d+$/ } readdir($proc))
	{
		open(my $env, '<', "/proc/$pid/environ") or next;
		local $/;
		my $text = <$env> // '';
		close($env);
		my %vars = map { /^([^=]*)=(.*)$/s ? ($1, $2) : () } split /\0/, $text;
		push @pids, $pid
		  if ($vars{LEADER_GROUP} // '') eq $r->{group}
		  && ($vars{LEADER_TERM} // '') eq $r->{term};
	}
	closedir($proc);
	return @pids;
}

# Right now (no waiting): nothing of $r's tree is left.
sub check_tree_gone
{
	my ($r, $what) = @_;
	my @alive = grep { kill(0, $r->{pids}{$_}) } sort keys %{ $r->{pids} };
	is_deeply(\@alive, [], "$what: the command and both its children are gone");
	my @left = tree_pids($r);
	is_deeply(\@left, [], "$what: no process of its term's tree is left");
	# (If some are, end them: they hold the pipes the test reads.)
	kill 'KILL', @left, map { $r->{pids}{$_} } @alive;
	return;
}

# $next's command beats only after the last beat of $prev's tree.
sub check_after
{
	my ($next, $prev, $what) = @_;
	my $prev_last = last_beat($prev, 'bg');
	$prev_last = last_beat($prev, 'fg') if last_beat($prev, 'fg') > $prev_last;
	cmp_ok(first_beat($next, 'fg'), '>', $prev_last,
		"$what: $next->{name}'s command beats only after the last beat of $prev->{name}'s tree");
	return;
}

# The background child beat on after $t (epoch seconds): it stopped slowly.
sub check_slow_stop
{
	my ($r, $t, $what) = @_;
	cmp_ok(last_beat($r, 'bg'), '>', $t * 1e9 + 200e6,
		"$what: $r->{name}'s background child beat on for a while after it was told to stop");
	return;
}

# ---- pg_leader killed (SIGKILL) ----

my $run_a = start_run('a', 'slow', '--group', 'tree', '--ttl', '5s');
wait_leading($run_a, 'tree');
my $run_b = start_run('b', 'slow', '--group', 'tree', '--ttl', '5s');
check_waiting('b');
my $killed_at = time;
kill 'KILL', run_pid($run_a);
wait_leading($run_b, 'tree');
check_tree_gone($run_a, 'a killed, b leads');
check_after($run_b, $run_a, 'a killed');
check_slow_stop($run_a, $killed_at, 'a killed');
$run_a->{h}->finish;
like($run_a->{err}, qr/the runner died; stopping the command and everything it started/,
	'a killed: its guard says it stops the tree');

# ---- pg_leader asked to stop (SIGTERM) ----

my $run_c = start_run('c', 'slow', '--group', 'tree', '--ttl', '5s');
check_waiting('c');
my $stopped_at = time;
kill 'TERM', run_pid($run_b);
is(exit_code($run_b), 143, 'b: after SIGTERM, exits with its command\'s status (143)');
check_tree_gone($run_b, 'b stopped, at its exit');
wait_leading($run_c, 'tree');
check_after($run_c, $run_b, 'b stopped');
check_slow_stop($run_b, $stopped_at, 'b stopped');

# ---- the command exits, leaving its background child running ----

my $run_d = start_run('d', 'exit', '--group', 'tree', '--ttl', '5s');
check_waiting('d');
kill 'TERM', run_pid($run_c);
is(exit_code($run_c), 143, 'c: after SIGTERM, exits 143');
wait_leading($run_d, 'tree');
my $run_e = start_run('e', 'slow', '--group', 'tree', '--ttl', '5s');
check_waiting('e');
open(my $exit, '>', "$run_d->{dir}/exit") or die;
close($exit);
is(exit_code($run_d), 0, 'd: exits with its command\'s status (0)');
like($run_d->{err}, qr/the command exited; stopping what it left running.*the command exited with status 0; released "tree"/s,
	'd: stops what its command left running, then releases');
check_tree_gone($run_d, 'd, at its exit');
wait_leading($run_e, 'tree');
check_after($run_e, $run_d, 'd\'s command exited');

# ---- pg_leader killed; its tree ignores SIGTERM; the grace is longer than the lease ----

my $run_f = start_run('f', 'stubborn', '--group', 'stubborn', '--ttl', '3s', '--grace', '1h');
wait_leading($run_f, 'stubborn');
my $run_g = start_run('g', 'slow', '--group', 'stubborn', '--ttl', '3s');
check_waiting('g');
$killed_at = time;
kill 'KILL', run_pid($run_f);
wait_leading($run_g, 'stubborn');
check_tree_gone($run_f, 'f killed, g leads');
check_after($run_g, $run_f, 'f killed');
cmp_ok(time - $killed_at, '<', 10,
	'f killed: its tree, ignoring SIGTERM, was killed when the lease ran out, not after the grace');
$run_f->{h}->finish;
like($run_f->{err}, qr/the lease runs out; killing the command and everything it started/,
	'f killed: its guard says it kills the tree as the lease runs out');

# The same for a named holder, whose lease does not end with the session:
# only its TTL ends it, and the tree is killed by then.
my $run_j = start_run('j', 'stubborn', '--group', 'named', '--holder', 'pod-1', '--ttl', '3s',
	'--grace', '1h');
wait_leading($run_j, 'named');
my $run_k = start_run('k', 'slow', '--group', 'named', '--holder', 'pod-2', '--ttl', '3s');
check_waiting('k');
$killed_at = time;
kill 'KILL', run_pid($run_j);
wait_leading($run_k, 'named');
check_tree_gone($run_j, 'named holder j killed, k leads');
check_after($run_k, $run_j, 'named holder j killed');
cmp_ok(time - $killed_at, '<', 10,
	'named holder j killed: its tree was killed when the lease ran out, not after the grace');
$run_j->{h}->finish;
kill 'TERM', run_pid($run_k);
is(exit_code($run_k), 143, 'named holder k: after SIGTERM, exits 143');

# ---- leadership lost ----

sub check_lost
{
	my ($r, $what, $reason) = @_;
	is(exit_code($r), 5, "$what: pg_leader exits with status 5");
	check_tree_gone($r, "$what, at its exit");
	like($r->{err}, $reason, "$what: it says why");
	return;
}

kill 'TERM', run_pid($run_e);
exit_code($run_e);
kill 'TERM', run_pid($run_g);
exit_code($run_g);

my $run_h = start_run('h', 'slow', '--group', 'force', '--ttl', '5s');
wait_leading($run_h, 'force');
$node->safe_psql('postgres', "SELECT leader_force_release('force')");
check_lost($run_h, 'forced release', qr/lost: the server reports the term force-released/);

my $run_i = start_run('i', 'slow', '--group', 'terminate', '--ttl', '5s');
wait_leading($run_i, 'terminate');
my $i_backend = $node->safe_psql('postgres',
	"SELECT pid FROM leader_status WHERE group_name = 'terminate'");
$node->safe_psql('postgres', "SELECT pg_terminate_backend($i_backend)");
check_lost($run_i, 'pg_terminate_backend', qr/lost: the connection to the server was lost/);

# ---- a command that cannot be executed takes no term ----

# Run pg_leader with @args; returns (exit code, stderr).
sub pg_leader
{
	my @args = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ $pg_leader, @args ], '<', \undef, '>', \$out, '2>', \$err,
		IPC::Run::timeout($timeout));
	return ($? >> 8, $err);
}

sub lease_row
{
	my ($group) = @_;
	return $node->safe_psql('postgres',
		"SELECT term, holder IS NULL FROM leader_lease WHERE group_name = '$group'");
}

my $plain = "$dir/not-executable";
open($fh, '>', $plain) or die;
print $fh "#!/bin/sh\necho ran > $dir/ran\n";
close($fh);
chmod 0644, $plain;

# A group that has a lease row (term 1, vacant), and one that has none.
$node->safe_psql('postgres', "SELECT leader_try_acquire('used'), leader_release('used')");
my $used_before = lease_row('used');

for my $case (
	[ 'a file that is not executable', $plain, 126, qr/cannot run "\Q$plain\E": not an executable file/ ],
	[ 'a directory', $dir, 126, qr/cannot run "\Q$dir\E": not an executable file/ ],
	[ 'a missing file', "$dir/missing", 127, qr/cannot run "\Q$dir\E\/missing": no such file/ ],
	[ 'a command not in PATH', 'no-such-command-anywhere', 127,
		qr/cannot run "no-such-command-anywhere": not found in PATH/ ])
{
	my ($what, $command, $code, $message) = @$case;
	for my $group ('unused', 'used')
	{
		my ($rc, $err) = pg_leader('run', '-d', $connstr, '--group', $group, '--', $command);
		is($rc, $code, "$what, group \"$group\": exit code $code");
		like($err, $message, "$what, group \"$group\": message");
		unlike($err, qr/leading/, "$what, group \"$group\": it never led");
	}
	is(lease_row('unused'), '', "$what: the group without a lease row still has none");
	is(lease_row('used'), $used_before, "$what: the other group's lease row is unchanged");
}
ok(!-e "$dir/ran", 'the file that is not executable never ran');

# Checked before connecting: no server needed to be told.
my ($rc, $err) = pg_leader('run', '-d', 'host=/nonexistent port=1', '--group', 'g', '--',
	'no-such-command-anywhere');
is($rc, 127, 'a command not found is reported before connecting (127, not 3)');
unlike($err, qr/cannot connect/, 'no connection was attempted');
# Through PATH, as execvp: the first executable file of that name, in a later
# entry if need be; a file of that name that cannot be executed is 126.
{
	my ($bin) = grep { -x "$_/true" } ('/usr/bin', '/bin');
	local $ENV{PATH} = "$dir/missing:$dir:$bin";
	($rc, $err) = pg_leader('run', '-d', $connstr, '--group', 'path', '--', 'true');
	is($rc, 0, 'a command found in a later PATH entry runs (true: 0)');
	($rc, $err) = pg_leader('run', '-d', $connstr, '--group', 'path', '--', 'not-executable');
	is($rc, 126, 'a file in PATH that is not executable: 126');
	like($err, qr/cannot run "not-executable": not an executable file/,
		'a file in PATH that is not executable: message');
}

$node->stop;
done_testing();
