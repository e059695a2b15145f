# LeaderTest: helpers shared by the TAP tests in test/t.  It owns
#   - reading leader_changed events through a background psql
#     (listen_leader_changed, events_so_far, summary);
#   - background sessions, and statements run in them without waiting for
#     their result (session, start_query, query_done, finish_query,
#     wait_until_waiting), and ending a session's client or backend
#     (client_pid, kill_client, backend_gone);
#   - reading one group's row of leader_status (lease_status);
#   - with the library preloaded: a node set up that way (preloaded_node),
#     the database's background worker (worker_pid, replaced_worker_pid,
#     worker_ends_lease), and when events arrive and who sent them
#     (wait_for_events);
#   - the node the tests of the pg_leader client run on (pg_leader_node);
#   - freezing a server process (SIGSTOP) only while it sleeps, never while
#     it may hold a lock that others need (freeze_when_idle);
#   - waiting for a condition (wait_until), and a program run through
#     IPC::Run: its pid and its exit code (run_pid, exit_code).
# Every helper is told the node, database and session it works on; the only
# state kept here are counters that make markers and tags unique.
#
# A test loads it with
#   use FindBin;
#   use lib $FindBin::RealBin;
#   use LeaderTest;
package LeaderTest;

use strict;
use warnings;

use Exporter 'import';
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

our @EXPORT = qw(
  see_term
  listen_leader_changed
  events_so_far
  summary
  session
  start_query
  query_done
  finish_query
  wait_until_waiting
  client_pid
  kill_client
  backend_gone
  lease_status
  worker_pid
  replaced_worker_pid
  worker_ends_lease
  wait_for_events
  preloaded_node
  pg_leader_node
  wait_until
  freeze_when_idle
  exit_code
  run_pid
);

# ---- leader_changed events ----

# A background psql on database $db of $node that listens on leader_changed.
sub listen_leader_changed
{
	my ($node, $db) = @_;
	my $listener = $node->background_psql($db);
	$listener->query_safe('LISTEN leader_changed');
	return $listener;
}

my $marker_count = 0;

# All events committed on database $db since the last call, in delivery
# order, as decoded JSON payloads, read through $listener (a listener on
# $db).  A marker notification sent now is delivered after every
# notification committed before it, so once it arrives nothing earlier is
# still in flight.
sub events_so_far
{
	my ($node, $db, $listener) = @_;
	my $marker = 'marker-' . ++$marker_count;
	$node->safe_psql($db,
		"SELECT pg_notify('leader_changed', '{\"marker\":\"$marker\"}')");

	my @events;
	my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
	while (1)
	{
		foreach my $line (split /\n/, $listener->query_safe('SELECT 1'))
		{
			next
			  unless $line =~
			  /^Asynchronous notification "leader_changed" with payload "(.*)" received from server process with PID \d+\.$/;
			my $event = decode_json($1);
			return @events
			  if defined $event->{marker} && $event->{marker} eq $marker;
			push @events, $event unless defined $event->{marker};
		}
		die "timed out waiting for notification $marker" if time > $deadline;
		usleep(20_000);
	}
}

# "event term pid" for each event, for readable comparisons.
sub summary
{
	return [ map { "$_->{event} $_->{term} " . ($_->{pid} // 'null') } @_ ];
}

# ---- background sessions ----

# A background psql on database $db (default postgres) of $node, with
# application_name $appname when given, that goes on after errors and
# reports SQLSTATEs.  Its backend's pid is in $s->{backend_pid}.
sub session
{
	my ($node, $appname, $db) = @_;
	my %env = defined $appname ? (PGAPPNAME => $appname) : ();
	local @ENV{ keys %env } = values %env;
	my $s = $node->background_psql($db // 'postgres', on_error_stop => 0);
	$s->query_safe('\set VERBOSITY verbose');
	$s->{backend_pid} = $s->query_safe('SELECT pg_backend_pid()');
	return $s;
}

my $tag_count = 0;

# Send a statement to session $s without waiting for its result; returns
# the tag to pass to query_done and finish_query.
sub start_query
{
	my ($s, $sql) = @_;
	my $tag = 'finished-' . ++$tag_count;
	$s->{stderr} = '';
	$s->{stdin} .= "$sql\n\\echo $tag\n";
	$s->{run}->pump_nb;
	return $tag;
}

# Whether the statement started with start_query has finished.
sub query_done
{
	my ($s, $tag) = @_;
	$s->{run}->pump_nb;
	return $s->{stdout} =~ /\Q$tag\E\n/;
}

# Wait for a statement started with start_query; returns (stdout, stderr).
sub finish_query
{
	my ($s, $tag) = @_;
	pump_until($s->{run}, $s->{timeout}, \$s->{stdout}, qr/\Q$tag\E\n/)
	  or die "statement $tag did not finish";
	my ($out, $err) = ($s->{stdout}, $s->{stderr});
	$out =~ s/\Q$tag\E\n//;
	chomp $out;
	$s->{stdout} = '';
	$s->{stderr} = '';
	return ($out, $err);
}

# Wait until the backend of session $s (of $node) sleeps inside
# leader_acquire; one assertion, named after $what.
sub wait_until_waiting
{
	my ($node, $s, $what) = @_;
	ok( $node->poll_query_until(
			'postgres', qq{
			SELECT state = 'active' AND wait_event_type = 'Extension'
			FROM pg_stat_activity WHERE pid = $s->{backend_pid}}),
		"$what: the waiting session sleeps in leader_acquire");
}

# The pid of the psql client process of background session $s.
sub client_pid
{
	my ($s) = @_;
	return $s->{run}{KIDS}[0]{PID};
}

# SIGKILL the psql client of background session $s and reap it; returns
# whether the signal was sent.
sub kill_client
{
	my ($s) = @_;
	my $sent = kill('KILL', client_pid($s));
	eval { $s->{run}->finish; };
	return $sent;
}

# Wait until backend $pid of $node has exited; returns whether it did.
sub backend_gone
{
	my ($node, $pid) = @_;
	return $node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid");
}

# ---- leader_status ----

# The columns @columns (default: state, session_alive) of group $group's row
# of leader_status in database $db of $node, as psql prints them
# ("vacant|f").
sub lease_status
{
	my ($node, $db, $group, @columns) = @_;
	@columns = qw(state session_alive) unless @columns;
	return $node->safe_psql($db,
		    'SELECT '
		  . join(', ', @columns)
		  . " FROM leader_status WHERE group_name = '$group'");
}

# ---- the background worker (shared_preload_libraries = 'leader') ----

# Wait until database $db of $node has its leader worker; returns its pid,
# or undef if none came.
sub worker_pid
{
	my ($node, $db) = @_;
	my $where =
	  "backend_type = 'leader worker' AND datname = '$db'";
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE $where")
	  or return undef;
	return $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE $where");
}

# Wait until database $db of $node has exactly one leader worker, another
# process than $old_pid; returns its pid, or undef if none came.
sub replaced_worker_pid
{
	my ($node, $db, $old_pid) = @_;
	my $where =
	  "backend_type = 'leader worker' AND datname = '$db'";
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 AND bool_and(pid <> $old_pid) FROM pg_stat_activity WHERE $where")
	  or return undef;
	return $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE $where");
}

# In database $db of $node, a named holder takes $group for 300 ms and
# nobody touches the group again: returns whether an "expired" event of that
# group, sent by the database's worker, reaches a listener within 10 s.
sub worker_ends_lease
{
	my ($node, $db, $group) = @_;
	my $worker = worker_pid($node, $db) // return 0;
	my $listener = listen_leader_changed($node, $db);
	$node->safe_psql($db, "SELECT leader_try_acquire('$group', '300ms', 'h')");
	my @events = eval {
		wait_for_events($listener,
			sub { grep { $_->{event} eq 'expired' && $_->{group} eq $group } @_ },
			10);
	};
	$listener->quit;
	return scalar grep {
		     $_->{event} eq 'expired'
		  && $_->{group} eq $group
		  && $_->{sender} == $worker
	} @events;
}

# Read leader_changed events through $listener (a listener of
# listen_leader_changed) until &$done(@events) is true of the events read
# by this call, polling the listener's session with a query of the server's
# clock; dies after $timeout seconds (default: the harness's default
# timeout).  Returns the events in delivery
# order, as decoded payloads with two more keys:
#   seen_at: the server's clock (epoch seconds) read by the first poll
#            that brought the event: it had arrived by then, and at most
#            one poll (about 10 ms) earlier;
#   sender:  the pid of the process whose commit sent it.
# Payloads without an "event" key (markers, other traffic) are skipped.
sub wait_for_events
{
	my ($listener, $done, $timeout) = @_;
	my @events;
	my $deadline =
	  time + ($timeout // $PostgreSQL::Test::Utils::timeout_default);

	until ($done->(@events))
	{
		die 'timed out waiting for leader_changed events' if time > $deadline;
		my $out = $listener->query_safe(
			'SELECT extract(epoch FROM clock_timestamp())');
		my ($seen_at, @new);
		foreach my $line (split /\n/, $out)
		{
			if ($line =~
				/^Asynchronous notification "leader_changed" with payload "(.*)" received from server process with PID (\d+)\.$/
			  )
			{
				my $event = decode_json($1);
				next unless defined $event->{event};
				$event->{sender} = $2;
				push @new, $event;
			}
			elsif ($line =~ /^\d+(?:\.\d+)?$/)
			{
				$seen_at = $line;
			}
		}
		die "no clock reading in the listener's output: $out"
		  unless defined $seen_at;
		$_->{seen_at} = $seen_at foreach @new;
		push @events, @new;
		usleep(10_000);
	}
	return @events;
}

# Check that $group's new $term beats every term recorded in %$max_term for
# it (one assertion, named after $what), and record it.
sub see_term
{
	my ($max_term, $group, $term, $what) = @_;
	Test::More::ok($term > ($max_term->{$group} // 0),
		"$group: $what gets term $term, above every earlier term ("
		  . ($max_term->{$group} // 0) . ')');
	$max_term->{$group} = $term
	  if !defined $max_term->{$group} || $term > $max_term->{$group};
	return;
}

# A started node named $name, with the library preloaded and the extension
# created in database postgres.
sub preloaded_node
{
	my ($name) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf', "shared_preload_libraries = 'leader'");
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION leader');
	return $node;
}

# ---- the pg_leader client ----

# A preloaded_node for the tests of pg_leader.  pg_leader's sessions show as
# application_name "pg_leader" unless PGAPPNAME (which the test harness sets)
# says otherwise, so this deletes PGAPPNAME from the environment.
sub pg_leader_node
{
	my ($name) = @_;
	delete $ENV{PGAPPNAME};
	return preloaded_node($name);
}

# ---- freezing a server process ----

# SIGSTOP server process $pid of $node once pg_stat_activity has shown it
# sleeping in wait event $idle_event ("Extension" for the leader worker's
# sleep, "ClientRead" for an idle backend) on two reads 20 ms apart: frozen
# at an arbitrary instant it might hold a lightweight lock (shared
# statistics, the lock manager), and every process that needs that lock,
# new connections included, would wait until it is thawed.  Returns
# whether the signal was sent; dies if the process never looked idle.
sub freeze_when_idle
{
	my ($node, $pid, $idle_event) = @_;
	my $query = "SELECT wait_event = '$idle_event' FROM pg_stat_activity WHERE pid = $pid";
	my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
	my $idle_reads = 0;
	while ($idle_reads < 2)
	{
		die "process $pid never slept in wait event $idle_event" if time > $deadline;
		$idle_reads = $node->safe_psql('postgres', $query) eq 't' ? $idle_reads + 1 : 0;
		usleep(20_000);
	}
	return kill('STOP', $pid);
}

# ---- waiting, and programs run through IPC::Run ----

# Wait until &$cond is true, checking every 20 ms; one assertion.
sub wait_until
{
	my ($cond, $what) = @_;
	my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
	until ($cond->())
	{
		if (time > $deadline)
		{
			fail($what);
			return 0;
		}
		usleep(20_000);
	}
	pass($what);
	return 1;
}

# Wait until the program run by $r->{h} (an IPC::Run harness) has exited;
# returns its exit code.
sub exit_code
{
	my ($r) = @_;
	my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
	while ($r->{h}->pumpable && time < $deadline)
	{
		$r->{h}->pump_nb;
		usleep(20_000);
	}
	$r->{h}->finish;
	return $r->{h}->result(0);
}

# The pid of the program run by $r->{h}.
sub run_pid { return $_[0]->{h}{KIDS}[0]{PID}; }

1;
