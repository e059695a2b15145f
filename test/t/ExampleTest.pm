# ExampleTest: runs the programs of examples/ as their users would, and checks
# what they print.  It owns
#   - a node for the examples, which checks that their work is fenced
#     (example_node);
#   - copies of an example program, started with the connection and settings
#     of the examples' shared contract in their environment, and whose output
#     lines are read as they come (start_copy, read_copies, wait_for_line,
#     lines_of, stop_copy);
#   - the scenario every leader-only worker example must pass
#     (check_worker_example): three copies elect one leader; killing it,
#     freezing it past its TTL, stopping it, forcing its release and
#     (session-bound holders) terminating its session each hand the group on;
#     every callback fires once per change; the fenced work of each term is
#     done by its leader alone, and never after a later term's began.
#
# The examples' contract (examples/README.md): the connection comes from
# PGHOST, PGPORT, PGDATABASE and PGUSER; LEADER_GROUP, LEADER_TTL (seconds),
# WORKER_NAME and WORK_INTERVAL (seconds) set the rest; each callback prints
# one line: "elected term=T", "revoked term=T", "new-leader term=T holder=H",
# and each committed unit of fenced work "work term=T".
package ExampleTest;

use strict;
use warnings;

use Exporter 'import';
use FindBin;
use lib $FindBin::RealBin;
use IPC::Run;
use LeaderTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

our @EXPORT = qw(
  example_path
  example_node
  start_copy
  read_copies
  wait_for_line
  lines_of
  stop_copy
  check_worker_example
);

# The path of $file under examples/ of the source tree.
sub example_path
{
	my ($file) = @_;
	return "$FindBin::RealBin/../../examples/$file";
}

# A started node named $name with the library preloaded, the extension and
# the examples' table (examples/schema.sql) created in database postgres, and
# a trigger on that table that refuses a row whose transaction does not hold
# a fence: the lock leader_fence takes (RowShareLock in the extension's group
# lock space, LEADER_LOCKSPACE_GROUP in src/leader.h).  An example that wrote
# its work unfenced would fail there, and never print "work".
sub example_node
{
	my ($name) = @_;
	my $node = preloaded_node($name);
	$node->safe_psql('postgres', '\i ' . example_path('schema.sql'));
	$node->safe_psql('postgres', q{
		CREATE FUNCTION example_work_fenced() RETURNS trigger
		LANGUAGE plpgsql AS $$
		BEGIN
			IF NOT EXISTS (SELECT FROM pg_locks
			               WHERE locktype = 'advisory' AND objsubid = 19526
			                 AND mode = 'RowShareLock' AND granted
			                 AND pid = pg_backend_pid()) THEN
				RAISE EXCEPTION 'work of term % written without leader_fence', NEW.term;
			END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER example_work_fenced BEFORE INSERT ON example_work
		FOR EACH ROW EXECUTE FUNCTION example_work_fenced();});
	return $node;
}

# Start one copy of @$command named $name, connected to database postgres of
# $node, with the contract's variables set from %settings (LEADER_GROUP,
# LEADER_TTL, WORK_INTERVAL, and any other).  Its stdout and stderr are
# collected in $copy->{out} and $copy->{err}.
sub start_copy
{
	my ($node, $name, $command, %settings) = @_;
	my $copy = { name => $name, out => '', err => '', command => $command };
	local $ENV{PGHOST} = $node->host;
	local $ENV{PGPORT} = $node->port;
	local $ENV{PGDATABASE} = 'postgres';
	local $ENV{PGUSER} = scalar getpwuid($<);
	local $ENV{WORKER_NAME} = $name;
	local @ENV{ keys %settings } = values %settings;
	$copy->{run} = IPC::Run::start($command, '<', \undef,
		'>', \$copy->{out}, '2>', \$copy->{err});
	$copy->{pid} = $copy->{run}{KIDS}[0]{PID};
	return $copy;
}

# Read what the running @copies have printed so far.
sub read_copies
{
	foreach my $copy (@_)
	{
		$copy->{run}->pump_nb if $copy->{run}->pumpable;
	}
	return;
}

# Wait until &$found($copy) returns a list for one of @$copies; returns that
# copy and the list.  Dies after the harness's default timeout, showing what
# the copies printed.
sub wait_for
{
	my ($copies, $found, $what) = @_;
	my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
	while (1)
	{
		read_copies(@$copies);
		foreach my $copy (@$copies)
		{
			my @result = $found->($copy);
			return ($copy, @result) if @result;
		}
		if (time > $deadline)
		{
			diag("$_->{name} printed:\n$_->{out}\n$_->{err}") foreach @$copies;
			die "timed out waiting for $what";
		}
		usleep(10_000);
	}
}

# Wait until one of @$copies has printed a line matching $re; returns that
# copy and the line's captures.
sub wait_for_line
{
	my ($copies, $re, $what) = @_;
	return wait_for($copies, sub { $_[0]{out} =~ /^$re$/m }, $what);
}

# The captures of every line of $copy's output that matches $re, in order
# (one capture per line: a list of strings; several: a list of arrays).
sub lines_of
{
	my ($copy, $re) = @_;
	my @found;
	while ($copy->{out} =~ /^$re$/mg)
	{
		push @found, defined $2 ? [ $1, $2 ] : $1;
	}
	return @found;
}

# Whether process $pid (a child not reaped yet) has exited: it is a zombie,
# or gone.
sub exited
{
	my ($pid) = @_;
	open(my $stat, '<', "/proc/$pid/stat") or return 1;
	return <$stat> =~ /^\d+ \(.*\) Z /;
}

# Send $signal to $copy and wait for it to exit; returns its exit status
# (or 128 + the signal that ended it).  A copy still running after the
# harness's default timeout is killed, and the test dies.
sub stop_copy
{
	my ($copy, $signal) = @_;
	kill($signal, $copy->{pid});
	my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
	until (exited($copy->{pid}))
	{
		read_copies($copy);
		if (time > $deadline)
		{
			$copy->{run}->kill_kill;
			die "$copy->{name} did not exit after SIG$signal";
		}
		usleep(10_000);
	}
	$copy->{run}->finish;
	my $status = $copy->{run}->full_result;
	return ($status & 127) ? 128 + ($status & 127) : $status >> 8;
}

# The events of $group among @events.
sub events_of
{
	my ($group, @events) = @_;
	return grep { $_->{group} eq $group } @events;
}

# "event term" for each of @events, for readable comparisons.
sub kinds
{
	return join ' ', map { "$_->{event} $_->{term}" } @_;
}

# Wait until one of @$candidates is elected with a term above $above;
# returns the copy and its term.
sub wait_for_new_leader
{
	my ($candidates, $above, $what) = @_;
	return wait_for($candidates,
		sub { grep { $_ > $above } lines_of($_[0], qr/elected term=(\d+)/) },
		$what);
}

# The scenario of a leader-only worker example (see the file header).
# %args: label (names the group and the assertions), command (the program,
# an array), named (true: it uses a named holder, its name; false: its
# session, "NAME (pid N)"), ttl (seconds), env (more environment variables
# for the copies, overriding the connection's).
sub check_worker_example
{
	my ($node, %args) = @_;
	my $label = $args{label};
	my $group = "example-$label";
	my %settings = (
		LEADER_GROUP => $group,
		LEADER_TTL => $args{ttl},
		WORK_INTERVAL => '0.2',
		%{ $args{env} // {} });
	my $listener = listen_leader_changed($node, 'postgres');
	my @events;
	my $ending_events = sub {
		push @events, events_of($group, events_so_far($node, 'postgres', $listener));
		return grep { $_->{event} ne 'acquired' } @events;
	};

	my @copies = map { start_copy($node, $_, $args{command}, %settings) }
	  ("$label-a", "$label-b", "$label-c");
	my @alive = @copies;

	# One leader among three.
	my ($leader, $term) =
	  wait_for_new_leader(\@copies, 0, "$label: a first leader");
	foreach my $copy (@copies)
	{
		wait_for_line([$copy], qr/new-leader term=$term holder=(.*)/,
			"$label: $copy->{name} told of the first leader");
	}
	wait_for_line([$leader], qr/work term=$term/, "$label: the leader's work");
	ok( $node->poll_query_until('postgres', qq{
			SELECT renewed_at > acquired_at FROM leader_status
			WHERE group_name = '$group'}),
		"$label: the leader renews its lease");
	read_copies(@copies);
	is(scalar(map { lines_of($_, qr/elected term=(\d+)/) } @copies),
		1, "$label: one of three copies is elected");

	# Failover: the leader is killed.
	my $killed_at = time;
	stop_copy($leader, 'KILL');
	@alive = grep { $_ != $leader } @alive;
	my ($next, $next_term) =
	  wait_for_new_leader(\@alive, $term, "$label: a leader after the kill");
	note(sprintf("%s: failover after SIGKILL: %.0f ms", $label, 1000 * (time - $killed_at)));
	my @ended = $ending_events->();
	is(kinds(@ended), ($args{named} ? 'expired' : 'vacated') . " $term",
		"$label: the killed leader's term ends "
		  . ($args{named} ? 'at its expiry' : 'with its session'));
	($leader, $term) = ($next, $next_term);

	# A frozen leader: SIGSTOP past its TTL.  Its lease expires and the other
	# copy takes over; thawed, the old leader is revoked once, and the
	# fencing keeps its work out of the new term.
	my ($other) = grep { $_ != $leader } @alive;
	wait_for_line([$_], qr/new-leader term=$term holder=.*/,
		"$label: $_->{name} told of the leader after the kill")
	  foreach @alive;
	wait_for_line([$leader], qr/work term=$term/, "$label: the new leader works");
	my ($frozen, $frozen_term) = ($leader, $term);
	kill('STOP', $frozen->{pid});
	($leader, $term) = wait_for_new_leader([$other], $term,
		"$label: a leader while the old one is frozen");
	@ended = $ending_events->();
	is(kinds($ended[-1]), "expired $frozen_term",
		"$label: the frozen leader's lease expires");
	wait_for_line([$leader], qr/work term=$term/,
		"$label: the new leader works while the old one is frozen");
	kill('CONT', $frozen->{pid});
	wait_for_line([$frozen], qr/revoked term=$frozen_term/,
		"$label: the thawed leader is revoked");
	wait_for_line([$frozen], qr/new-leader term=$term holder=.*/,
		"$label: the thawed leader is told of the new one");

	# Handover: the leader is stopped.
	wait_for_line([$leader], qr/new-leader term=$term holder=.*/,
		"$label: the leader told of itself");
	is(stop_copy($leader, 'TERM'), 0, "$label: a stopped leader exits 0");
	like($leader->{out}, qr/revoked term=$term\n\z/,
		"$label: a stopped leader says it was revoked");
	@alive = grep { $_ != $leader } @alive;
	($leader, $term) =
	  wait_for_new_leader(\@alive, $term, "$label: a leader after the stop");
	@ended = $ending_events->();
	is($ended[-1]{event}, 'released', "$label: the stopped leader released");

	# Revocation: an administrator forces the release; the last copy, alone,
	# takes the group again.
	$node->safe_psql('postgres', "SELECT leader_force_release('$group')");
	wait_for_line([$leader], qr/revoked term=$term/, "$label: revoked by force");
	(undef, $term) =
	  wait_for_new_leader([$leader], $term, "$label: elected again after force");
	@ended = $ending_events->();
	is($ended[-1]{event}, 'forced', "$label: the forced release is announced");

	unless ($args{named})
	{
		# Its session is terminated: it notices, reconnects and leads again.
		my $pid = $node->safe_psql('postgres',
			"SELECT pid FROM leader_status WHERE group_name = '$group'");
		$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
		wait_for_line([$leader], qr/revoked term=$term/,
			"$label: revoked when its session is terminated");
		(undef, $term) = wait_for_new_leader([$leader], $term,
			"$label: elected again after reconnecting");
		@ended = $ending_events->();
		is($ended[-1]{event}, 'vacated', "$label: the terminated session is announced");
	}
	wait_for_line([$leader], qr/work term=$term/, "$label: the last leader works");
	wait_for_line([$leader], qr/new-leader term=$term holder=.*/,
		"$label: the last leader told of itself");
	is(stop_copy($leader, 'TERM'), 0, "$label: the last copy exits 0");
	$ending_events->();

	check_callbacks($node, \%args, $group, \@copies, \@events);
	$listener->quit;
	return;
}

# After the scenario: each copy's callbacks fired once per change, and the
# work of each term was done by the copy elected for it alone.
sub check_callbacks
{
	my ($node, $args, $group, $copies, $events) = @_;
	my $label = $args->{label};
	my @acquired = grep { $_->{event} eq 'acquired' } @$events;
	my @terms = map { $_->{term} } @acquired;
	is(scalar(@$events), 2 * @acquired,
		"$label: one acquired and one ending event per term ("
		  . kinds(@$events) . ')');

	my %leader_of;    # term => the name of the copy elected for it
	foreach my $copy (@$copies)
	{
		my $name = $copy->{name};
		note("$name printed:\n$copy->{out}$copy->{err}");
		my @elected = lines_of($copy, qr/elected term=(\d+)/);
		my @revoked = lines_of($copy, qr/revoked term=(\d+)/);
		my @told = lines_of($copy, qr/new-leader term=(\d+) holder=(.*)/);
		$leader_of{$_} = $name foreach @elected;

		# A killed copy never says it was revoked; the others say so once
		# for each term they were elected for.
		my $killed = $copy->{run}->full_result == 9;
		is( "@revoked",
			$killed ? '' : "@elected",
			"$label: $name: revoked once per term it was elected for (@elected)");

		# Each copy led when it was stopped: it was told of every leader up
		# to itself, once each, in order, with the holder of the event.
		my @told_terms = map { $_->[0] } @told;
		my @expected = grep { $_ <= $elected[-1] } @terms;
		is("@told_terms", "@expected",
			"$label: $name: told of each new leader once, in order");
		foreach my $line (@told)
		{
			my ($event) = grep { $_->{term} == $line->[0] } @acquired;
			is($line->[1], $event->{holder},
				"$label: $name: the holder it was told of for term $line->[0] is the event's");
		}
	}
	is(join(' ', sort { $a <=> $b } keys %leader_of),
		"@terms", "$label: every term was won by one copy");
	foreach my $event (@acquired)
	{
		my $name = $leader_of{ $event->{term} } // '?';
		my $holder = $args->{named} ? qr/\Q$name\E/ : qr/\Q$name\E \(pid \d+\)/;
		like($event->{holder}, qr/^$holder$/,
			"$label: the holder of term $event->{term} is its elected copy's "
			  . ($args->{named} ? 'name' : 'session'));
	}

	is( $node->safe_psql('postgres', qq{
			WITH t AS (SELECT term, min(done_at) AS first, max(done_at) AS last
			           FROM example_work WHERE group_name = '$group' GROUP BY term)
			SELECT string_agg(a.term || ' after ' || b.term, ', ')
			FROM t AS a JOIN t AS b ON b.term > a.term AND a.last > b.first}),
		'', "$label: no work of a term was done after a later term's began");
	foreach my $row (split /\n/, $node->safe_psql('postgres', qq{
		SELECT term, string_agg(DISTINCT worker, ' ') FROM example_work
		WHERE group_name = '$group' GROUP BY term ORDER BY term}))
	{
		my ($term, $workers) = split /\|/, $row;
		is($workers, $leader_of{$term} // '(nobody elected)',
			"$label: the work of term $term was done by its leader alone");
	}
	return;
}

1;
