# In a SQL_ASCII database, where a name may hold any bytes, every
# leader_changed payload is still valid JSON (UTF-8): a group or holder name
# that is not valid UTF-8 is refused with SQLSTATE 22021 before it can start
# a leadership, and changes nothing; UTF-8 names work and round-trip; a
# session holder's display name, which includes application_name, stays
# valid whatever bytes the client sends as its application_name.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use LeaderTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('sql_ascii');
$node->init;
$node->start;
$node->safe_psql(
	'postgres', q{
	CREATE ROLE app_owner LOGIN;
	CREATE ROLE alice LOGIN;
	CREATE DATABASE ascii OWNER app_owner ENCODING 'SQL_ASCII'
	  LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
});
$node->safe_psql('ascii', 'CREATE EXTENSION leader');
my $listener = listen_leader_changed($node, 'ascii');

# Run $sql as alice in database ascii; returns (stdout, stderr), verbose.
sub alice
{
	my ($sql) = @_;
	my ($ret, $out, $err) = $node->psql(
		'ascii', "\\set VERBOSITY verbose\n$sql",
		extra_params => [ '-U', 'alice' ]);
	return ($out, $err);
}

# Latin-1 bytes, not UTF-8.
my %refused = (
	'a group name' => q{SELECT leader_try_acquire(E'caf\351', '1 hour', 'pod')},
	'a holder name' => q{SELECT leader_try_acquire('cafe', '1 hour', E'pod-\351')},
	'a group name, waiting' =>
	  q{SELECT leader_acquire(E'caf\351', '1 second', '1 hour', 'pod')},);
foreach my $what (sort keys %refused)
{
	my ($out, $err) = alice($refused{$what});
	like($err, qr/ERROR:  22021: (group_name|holder) is not valid UTF-8/,
		"$what that is not UTF-8 is refused with 22021");
}
is($node->safe_psql('ascii', 'SELECT count(*) FROM leader_lease'),
	'0', 'the refused calls changed nothing');

# UTF-8 names work: "été" for group and holder.
my $ete = q{convert_from('\xc3a974c3a9', 'UTF8')};
my ($out, $err) = alice("SELECT leader_try_acquire($ete, '1 hour', $ete)");
is($out, 't', 'a UTF-8 group and holder name acquire');

# A session whose client sends an application_name that is not UTF-8.
my $s = session($node, "web-\xe9", 'ascii');
is($s->query_safe("SELECT leader_try_acquire('sessions')"),
	't', 'a session with a Latin-1 application_name acquires');
$s->quit;

my @events = events_so_far($node, 'ascii', $listener);
is(scalar(@events), 2, 'two events, one per acquisition')
  or diag(explain(\@events));
is($events[0]{group}, "\x{e9}t\x{e9}", 'the UTF-8 group name round-trips');
is($events[0]{holder}, "\x{e9}t\x{e9}", 'and so does the holder name');
like($events[1]{holder}, qr/^web-.* \(pid \d+\)$/,
	'the session holder\'s display name is valid JSON text');

$listener->quit;
done_testing();
