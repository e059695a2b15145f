# The shell example (examples/shell/leader-cron.sh), run as the same cron job
# on three "machines" (three loops that run it every half second, each under
# its own name), against a live server: one machine leads and runs the job,
# the others say who leads; the leader's runs renew its lease and keep the
# term; when the leader's loop is killed, its lease expires and another
# machine takes over with a higher term; each term's job is done by its
# leader alone, and "elected" is printed once per term.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use ExampleTest;
use LeaderTest;
use List::Util qw(uniq);
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = example_node('example_shell');
my $group = 'example-shell';
my $listener = listen_leader_changed($node, 'postgres');

# "cron": the job every half second, each machine with a lock file of its
# own; the lease lasts 5 s.
my $locks = PostgreSQL::Test::Utils::tempdir;
my @cron = (
	'bash', '-c',
	'while :; do LOCK_FILE="$1/$WORKER_NAME.lock" bash "$0"; sleep 0.5; done',
	example_path('shell/leader-cron.sh'), $locks);
my %settings = (LEADER_GROUP => $group, LEADER_TTL => 5);
my @machines = map { start_copy($node, $_, \@cron, %settings) } qw(shell-a shell-b shell-c);

# Runs of a machine that led, as [term, kind]; and names it said lead.
sub led { return lines_of($_[0], qr/(?:elected|leader) term=(\d+)/) }
sub said_leads { return lines_of($_[0], qr/not leader: (\S+) leads/) }

my ($leader, $term) = wait_for_line(\@machines, qr/elected term=(\d+)/, 'a first leader');
my @others = grep { $_ != $leader } @machines;
wait_for_line([$leader], qr/leader term=$term/, 'the leader renews at its next run');
foreach my $machine (@others)
{
	wait_for_line([$machine], qr/not leader: \Q$leader->{name}\E leads/,
		"$machine->{name} sees who leads");
}
read_copies(@machines);
is(scalar(map { led($_) } @others), 0, 'the other machines did not lead');
is(join(' ', uniq(led($leader))), $term, 'the leader keeps its term run after run');

# The leader's cron stops for good.
stop_copy($leader, 'KILL');
my $killed_at = time;
my ($next, $next_term) =
  wait_for_line(\@others, qr/elected term=(\d+)/, 'a leader after the kill');
note(sprintf('takeover %.1f s after the kill (lease: 5 s, cron: 0.5 s)', time - $killed_at));
cmp_ok($next_term, '>', $term, 'the new leader has a higher term');
wait_for_line([$next], qr/work term=$next_term/, 'the new leader runs the job');
my ($last) = grep { $_ != $next } @others;
wait_for_line([$last], qr/not leader: \Q$next->{name}\E leads/,
	'the third machine sees the new leader');

my @events = grep { $_->{group} eq $group } events_so_far($node, 'postgres', $listener);
stop_copy($_, 'TERM') foreach @others;
is( join(' ', map { "$_->{event} $_->{term} $_->{holder}" } @events),
	"acquired $term $leader->{name} expired $term $leader->{name} "
	  . "acquired $next_term $next->{name}",
	'events: the first lease expires, then the next machine takes over');

my %elected = (
	map {
		my $m = $_;
		map { ($_ => $m->{name}) } lines_of($m, qr/elected term=(\d+)/)
	} @machines);
is(scalar(map { lines_of($_, qr/elected term=(\d+)/) } @machines),
	2, 'elected is printed once per term');
is( $node->safe_psql('postgres', qq{
		SELECT string_agg(DISTINCT term || ':' || worker, ' ')
		FROM example_work WHERE group_name = '$group'}),
	"$term:$leader->{name} $next_term:$next->{name}",
	'each term\'s job was run by its leader alone');

$listener->quit;
$node->stop;
done_testing();

