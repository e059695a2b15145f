# Reclaiming vacant groups never waits on another session's uncommitted
# change: a vacant group whose group lock another transaction holds is
# skipped; while one creator's reclaim is uncommitted (it holds the term
# floor lock), another creator at its cap fails at once with 54000, and the
# reclaimed groups cannot be taken until it commits; after the commit a
# reclaimed group created anew starts above its old term.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use LeaderTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('reclaim');
$node->init;
$node->start;
$node->safe_psql('postgres', q{
	CREATE ROLE role_a;
	CREATE ROLE role_b;
	CREATE DATABASE app;});
$node->safe_psql('app', 'CREATE EXTENSION leader');

# A session acting as $role with a cap of 2 groups per role; any wait would
# end in a statement timeout instead of the answers checked below.
sub role_session
{
	my ($role) = @_;
	my $s = session($node, undef, 'app');
	$s->query_safe("SET leader.max_groups_per_role = 2; SET statement_timeout = '20s'; SET ROLE $role");
	return $s;
}

# Run $sql in session $s; returns (stdout, stderr).
sub run_in
{
	my ($s, $sql) = @_;
	$s->{stderr} = '';
	my $out = $s->query($sql);
	my $err = $s->{stderr};
	$s->{stderr} = '';
	return ($out, $err);
}

sub groups
{
	return $node->safe_psql('app',
		'SELECT group_name, creator_role, term, holder IS NOT NULL FROM leader_lease ORDER BY 1');
}

# ---- a vacant group another transaction is changing is skipped ----

my $b1 = role_session('role_b');
$b1->query_safe(q{
	SELECT leader_try_acquire('h1', '1 hour', 'b'), leader_release('h1', 'b'),
	       leader_try_acquire('h2', '1 hour', 'b'), leader_release('h2', 'b')});
# Another transaction takes h1 (vacant) and has not committed yet.
my $other = session($node, undef, 'app');
$other->query_safe(q{BEGIN; SELECT leader_try_acquire('h1', '1 hour', 'admin')});
my ($out, $err) = run_in($b1, q{SELECT leader_try_acquire('h3', '1 hour', 'b')});
is($out, 't', 'role_b at its cap creates h3 at once');
$other->query_safe('COMMIT');
is(groups(),
	"h1|role_b|2|t\nh3|role_b|2|t",
	'h2 was reclaimed; h1, locked by the other transaction, was skipped and is held by it');

# ---- an uncommitted reclaim: others fail or answer at once ----

my $a1 = role_session('role_a');
my $a2 = role_session('role_a');
# (Groups created from now on start above the floor of 1 that h2 left: g1
# ends at term 3, g2 at 2.)
$a1->query_safe(q{
	SELECT leader_try_acquire('g1', '1 hour', 'a'), leader_release('g1', 'a'),
	       leader_try_acquire('g1', '1 hour', 'a'), leader_release('g1', 'a'),
	       leader_try_acquire('g2', '1 hour', 'a'), leader_release('g2', 'a')});
$a1->query_safe('BEGIN');
($out, $err) = run_in($a1, q{SELECT leader_try_acquire('g3', '1 hour', 'a')});
is($out, 't', 'role_a at its cap creates g3, reclaiming g1 and g2 (not committed yet)');

($out, $err) = run_in($a2, q{SELECT leader_try_acquire('g4', '1 hour', 'a')});
like($err, qr/54000.*cannot create group "g4": role "role_a" has reached leader.max_groups_per_role/s,
	'another creator of role_a at its cap fails at once: the term floor lock is busy');
($out, $err) = run_in($b1, q{SELECT leader_try_acquire('g1', '1 hour', 'b')});
is($out, 'f', 'a reclaimed group cannot be taken while the reclaim is uncommitted');
($out, $err) = run_in($b1, q{SELECT leader_acquire('g1', '100 ms', '1 hour', 'b')});
is($out, 'f', 'nor by a waiting acquire before its timeout');

$a1->query_safe('COMMIT');
is($node->safe_psql('app', 'SELECT term FROM leader_term_floor'),
	'3', 'the term floor holds the highest reclaimed term (g1\'s)');
($out, $err) = run_in($other, q{SELECT leader_try_acquire('g1', '1 hour', 'admin'),
	leader_term('g1', 'admin')});
is($out, "t|4", 'after the commit g1 is created anew above its old term 3');
is(groups(),
	"g1|postgres|4|t\ng3|role_a|4|t\nh1|role_b|2|t\nh3|role_b|2|t",
	'the groups after the reclaims');

$_->quit for ($a1, $a2, $b1, $other);
$node->stop;
done_testing();
