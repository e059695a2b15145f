# PREPARE TRANSACTION is refused (SQLSTATE 0A000, with a hint) for any
# transaction that holds a lock of the extension: after an acquisition
# (named or session-bound), a renewal, a release, a forced release and a
# fence.  A prepared transaction would keep the group locked across
# restarts.  A transaction that only read, or whose attempt lost and so
# kept no lock, prepares as usual.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use LeaderTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('prepare');
$node->init;
$node->append_conf('postgresql.conf', 'max_prepared_transactions = 5');
$node->start;
$node->safe_psql(
	'postgres', q{
	CREATE ROLE app_owner LOGIN;
	CREATE ROLE alice LOGIN;
	CREATE DATABASE app OWNER app_owner;
});
$node->safe_psql('app', 'CREATE EXTENSION leader');
$node->safe_psql('app',
	'GRANT EXECUTE ON FUNCTION leader_force_release(text) TO alice');

# Run $sql as alice in a transaction, then PREPARE it; returns psql's
# stderr (verbose, so with the SQLSTATE).
sub prepare_after
{
	my ($sql) = @_;
	my ($ret, $out, $err) = $node->psql(
		'app', qq{
		\\set VERBOSITY verbose
		BEGIN;
		$sql;
		PREPARE TRANSACTION 'p';
	}, extra_params => [ '-U', 'alice' ]);
	return $err;
}

sub prepared_count
{
	return $node->safe_psql('app', 'SELECT count(*) FROM pg_prepared_xacts');
}

sub term_of
{
	my ($group) = @_;
	return $node->safe_psql('app',
		"SELECT coalesce(term, 0) || ' ' || coalesce(holder, '-') FROM leader_lease WHERE group_name = '$group'"
	);
}

sub alice
{
	my ($sql) = @_;
	return $node->safe_psql('app', $sql, extra_params => [ '-U', 'alice' ]);
}

my %refused = (
	'a named acquisition' => "SELECT leader_try_acquire('n1', '1 hour', 'pod')",
	'a session-bound acquisition' => "SELECT leader_try_acquire('s1')",
	'a renewal' => "SELECT leader_try_acquire('held', '1 hour', 'pod')",
	'a release' => "SELECT leader_release('held', 'pod')",
	'a forced release' => "SELECT leader_force_release('held')",
	'a fence' => "SELECT leader_fence('held', 1)",);

alice("SELECT leader_try_acquire('held', '1 hour', 'pod')");
foreach my $what (sort keys %refused)
{
	my $err = prepare_after($refused{$what});
	like($err,
		qr/ERROR:  0A000: cannot PREPARE a transaction that holds the group lock of group "\w+"/,
		"PREPARE is refused after $what");
	like($err, qr/HINT:  /, "with a hint, after $what");
	is(prepared_count(), '0', "nothing is prepared after $what");
	$node->safe_psql('app', "ROLLBACK PREPARED 'p'") if prepared_count();
}
is(term_of('held'), '1 pod', 'the refused transactions changed nothing');
is(term_of('n1'), '', 'not even the refused acquisition of a new group');

# A losing attempt and reads keep no lock: such a transaction prepares.
my $err = prepare_after(
	"SELECT leader_try_acquire('held', '1 hour', 'other'), leader_is_leader('held', 'pod'), leader_current('held')"
);
is($err, '', 'a transaction that only lost and read prepares');
is(prepared_count(), '1', 'and is prepared');
$node->safe_psql('app', "ROLLBACK PREPARED 'p'");

done_testing();
