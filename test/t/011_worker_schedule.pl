# The worker's schedule (schedule.c) and the notes that feed it
# (shared_state.c): the worker reads no lease unless it is due or it was
# told about it, so every way a lease can come to end sooner than the
# worker planned must reach it:
#   (a) a renewal with a shorter TTL than the lease had left: "expired"
#       arrives at the new expires_at, not the old one;
#   (b) a lease renewed before each expiry is looked at and put back, never
#       ended, and ends at expires_at once the renewals stop;
#   (c) more new leases in one commit than the worker's notes hold, while
#       the worker is frozen (SIGSTOP) so that it cannot drain them: it reads
#       every held lease instead, and every one expires on time;
#   (d) a session that held more session-bound leases than the notes hold
#       ends while the worker is frozen: every lease is vacated once it
#       thaws.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use LeaderTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use Time::Local qw(timegm);

my $many = 300;    # more than the 256 notes a database's worker can hold

my $node = preloaded_node('worker_schedule');

my $worker = worker_pid($node, 'postgres');
ok($worker, 'the leader worker of database postgres runs');
my $listener = listen_leader_changed($node, 'postgres');

my $worker_stopped = 0;
END { kill('CONT', $worker) if $worker_stopped; }

sub freeze_worker { $worker_stopped = 1; return freeze_when_idle($node, $worker, 'Extension'); }
sub thaw_worker   { $worker_stopped = 0; return kill('CONT', $worker); }

# An event's expires_at (ISO 8601, UTC) as epoch seconds.
sub iso_epoch
{
	my ($ts) = @_;
	my ($y, $mo, $d, $h, $mi, $s, $frac) =
	  $ts =~ /^(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)(\.\d+)?\+00:00$/
	  or die "not a UTC timestamp: $ts";
	return timegm($s, $mi, $h, $d, $mo - 1, $y) + ($frac // 0);
}

# Wait (up to $timeout s) until "$event" has arrived for every group in
# @$groups; returns those events by group.
sub wait_for_ends
{
	my ($event, $groups, $timeout) = @_;
	my %wanted = map { $_ => 1 } @$groups;
	my %seen;
	my @events = eval {
		wait_for_events(
			$listener,
			sub {
				%seen = map { $_->{group} => $_ }
				  grep { $_->{event} eq $event && $wanted{ $_->{group} } } @_;
				return keys %seen == keys %wanted;
			},
			$timeout);
	};
	return \%seen;
}

# ---- (a) a renewal that shortens the lease ---------------------------------------
$node->safe_psql('postgres', "SELECT leader_try_acquire('shortened', '1 hour', 'h')");
$node->safe_psql('postgres', "SELECT leader_try_acquire('shortened', '1 s', 'h')");
my $ends = wait_for_ends('expired', ['shortened'], 10);
ok($ends->{shortened},
	'(a) a lease renewed with a shorter TTL expires at its new expires_at');
cmp_ok($ends->{shortened}{seen_at} // 0,
	'>=', iso_epoch($ends->{shortened}{expires_at} // '1970-01-01T00:00:00+00:00'),
	'(a) and not before it');

# ---- (b) a renewed lease is looked at and put back, never ended ------------------------
$node->safe_psql('postgres', "SELECT leader_try_acquire('renewed', '1 s', 'h')");
foreach (1 .. 8)
{
	usleep(400_000);
	$node->safe_psql('postgres', "SELECT leader_try_acquire('renewed', '1 s', 'h')");
}
my @meanwhile = events_so_far($node, 'postgres', $listener);
is(scalar(grep { $_->{group} eq 'renewed' && $_->{event} ne 'acquired' } @meanwhile),
	0, '(b) a lease renewed before each expiry for 3 s never ends');
is(lease_status($node, 'postgres', 'renewed', 'state'),
	'held', '(b) and is still held');
$ends = wait_for_ends('expired', ['renewed'], 10);
ok($ends->{renewed}, '(b) once its renewals stop, it expires');

# ---- (c) more new leases than notes, while the worker cannot take them -----------------
my @groups = map { "burst-$_" } 1 .. $many;
ok(freeze_worker(), '(c) the worker is frozen');
$node->safe_psql('postgres',
	"SELECT count(leader_try_acquire('burst-' || g, '2 s', 'h')) FROM generate_series(1, $many) g");
ok(thaw_worker(), "(c) $many leases taken in one commit; the worker thaws");
$ends = wait_for_ends('expired', \@groups, 15);
is(scalar(keys %$ends), $many, "(c) all $many leases expire");
is(scalar(grep { $_->{seen_at} < iso_epoch($_->{expires_at}) } values %$ends),
	0, '(c) none of them ends before its expires_at');

# ---- (d) a session that led more groups than notes ends while the worker is frozen -------
my $holder = session($node, 'many-leases');
is( $holder->query_safe(
		"SELECT count(*) FROM generate_series(1, $many) g WHERE leader_try_acquire('s-' || g, '1 hour')"),
	$many,
	"(d) one session leads $many groups");
ok(freeze_worker(), '(d) the worker is frozen');
ok(kill_client($holder), '(d) the session\'s client is killed');
ok(backend_gone($node, $holder->{backend_pid}), '(d) its backend has exited');
ok(thaw_worker(), '(d) the worker thaws');
$ends = wait_for_ends('vacated', [ map { "s-$_" } 1 .. $many ], 15);
is(scalar(keys %$ends), $many, "(d) all $many leases are vacated");
is($node->safe_psql('postgres',
		"SELECT count(*) FROM leader_status WHERE group_name LIKE 's-%' AND state <> 'vacant'"),
	0, '(d) and every one of those groups is vacant');

$listener->quit;
$node->stop;
done_testing();
