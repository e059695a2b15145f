# No choice of group name lets one group block another: group lock tags come
# from a hash keyed with a secret of the cluster.
#
#  - The same group's lock tag differs between two clusters, and differs
#    from the unseeded hash earlier versions used.
#  - A name crafted offline to collide with a victim group under that
#    unseeded hash, held by another role in an open transaction, no longer
#    stops the victim's renewal, nor makes leader_force_release wait.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use LeaderTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# ---- the unseeded hash, inverted ----
#
# Earlier versions tagged a group's lock with hash_bytes_extended(name, 0),
# which SQL computes as hashtextextended(name, 0).  For a 12-byte name that
# hash is one mix() and one final() over three 32-bit words, both
# invertible: any 64-bit output has a 12-byte preimage for every choice of
# the state's unused word, so colliding names are found in a moment.

sub rot { my ($x, $k) = @_; return (($x << $k) | ($x >> (32 - $k))) & 0xffffffff; }
sub add { return ($_[0] + $_[1]) & 0xffffffff; }
sub sub32 { return ($_[0] - $_[1]) & 0xffffffff; }

sub unfinal
{
	my ($a, $b, $c) = @_;
	$c = add($c, rot($b, 24)); $c ^= $b;
	$b = add($b, rot($a, 14)); $b ^= $a;
	$a = add($a, rot($c, 4));  $a ^= $c;
	$c = add($c, rot($b, 16)); $c ^= $b;
	$b = add($b, rot($a, 25)); $b ^= $a;
	$a = add($a, rot($c, 11)); $a ^= $c;
	$c = add($c, rot($b, 14)); $c ^= $b;
	return ($a, $b, $c);
}

sub unmix
{
	my ($a, $b, $c) = @_;
	$b = sub32($b, $a); $c ^= rot($b, 4);  $c = add($c, $b);
	$a = sub32($a, $c); $b ^= rot($a, 19); $b = add($b, $a);
	$c = sub32($c, $b); $a ^= rot($c, 16); $a = add($a, $c);
	$b = sub32($b, $a); $c ^= rot($b, 8);  $c = add($c, $b);
	$a = sub32($a, $c); $b ^= rot($a, 6);  $b = add($b, $a);
	$c = sub32($c, $b); $a ^= rot($c, 4);  $a = add($a, $c);
	return ($a, $b, $c);
}

# A 12-byte name of ASCII characters (no NUL) whose unseeded 64-bit hash is
# $hash (as hashtextextended prints it), in hex.
sub colliding_name
{
	my ($hash) = @_;
	my $unsigned = $hash < 0 ? $hash + 2**64 : $hash;
	my ($b, $c) = (int($unsigned / 2**32), $unsigned % 2**32);
	my $init = (0x9e3779b9 + 12 + 3923095) & 0xffffffff;
	for my $free (0 .. 10_000_000)
	{
		my @words = unmix(unfinal($free, $b, $c));
		my $bytes = pack('V3', map { sub32($_, $init) } @words);
		return unpack('H*', $bytes) if $bytes =~ /^[\x01-\x7f]{12}$/;
	}
	die 'no colliding name found';
}

# ---- two clusters ----

my @nodes;
foreach my $name ('tags_a', 'tags_b')
{
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->start;
	$node->safe_psql(
		'postgres', q{
		CREATE ROLE app_owner LOGIN;
		CREATE ROLE alice LOGIN;
		CREATE ROLE mallory LOGIN;
		CREATE DATABASE app OWNER app_owner;
	});
	$node->safe_psql('app', 'CREATE EXTENSION leader');
	push @nodes, $node;
}

# The tag (field 2, field 3) of the group lock a transaction of alice
# takes when it acquires $group on $node.
sub held_group_lock_tag
{
	my ($node, $group) = @_;
	return $node->safe_psql(
		'app', qq{
		BEGIN;
		SELECT leader_try_acquire('$group', '1 hour', 'alice-1') \\gset
		SELECT classid::bigint || '/' || objid::bigint FROM pg_locks
		 WHERE locktype = 'advisory' AND objsubid = 19526 AND pid = pg_backend_pid();
		ROLLBACK;
	}, extra_params => [ '-U', 'alice' ]);
}

my $old_tag = $nodes[0]->safe_psql(
	'app', q{
	SELECT ((h >> 32) & 4294967295) || '/' || (h & 4294967295)
	FROM (SELECT hashtextextended('victim', 0) AS h) s});
my @tags = map { held_group_lock_tag($_, 'victim') } @nodes;
like($tags[0], qr{^\d+/\d+$}, 'the group lock of "victim" shows in pg_locks');
isnt($tags[0], $tags[1], 'the same group has different lock tags on two clusters');
isnt($tags[0], $old_tag, 'the lock tag is not the unseeded hash of the name');
isnt($tags[1], $old_tag, 'nor on the other cluster');

# ---- a crafted name no longer blocks its victim ----

my $node = $nodes[0];
my $victim_hash =
  $node->safe_psql('app', "SELECT hashtextextended('victim', 0)");
my $crafted = "convert_from('\\x" . colliding_name($victim_hash) . "', 'UTF8')";
is( $node->safe_psql(
		'app', "SELECT hashtextextended($crafted, 0) = $victim_hash"),
	't',
	'the crafted name has the unseeded hash of "victim"');

is( $node->safe_psql(
		'app', "SELECT leader_try_acquire('victim', '1 hour', 'alice-1')",
		extra_params => [ '-U', 'alice' ]),
	't',
	'alice leads "victim"');

my $mallory = $node->background_psql(
	'app',
	on_error_stop => 0,
	extra_params => [ '-U', 'mallory' ]);
$mallory->query_safe('BEGIN');
is($mallory->query_safe("SELECT leader_try_acquire($crafted, '1 hour', 'm')"),
	't', 'mallory takes the crafted group in an open transaction');

is( $node->safe_psql(
		'app', "SELECT leader_try_acquire('victim', '1 hour', 'alice-1')",
		extra_params => [ '-U', 'alice' ]),
	't',
	"alice's renewal of \"victim\" still succeeds");

my ($ret, $out, $err) = $node->psql(
	'app', q{
	SET lock_timeout = '5s';
	SELECT leader_force_release('victim');
});
is($out, 't',
	'leader_force_release("victim") ends the lease without waiting for mallory')
  or diag($err);

$mallory->query_safe('ROLLBACK');
$mallory->quit;
$_->stop foreach @nodes;
done_testing();
