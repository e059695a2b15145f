# The launcher starts workers only in the databases that may have the
# extension, from a list kept in the data directory (leader_databases):
#   (a) first start (no list): every database is looked at once, and a
#       worker that finds no extension takes its database off the list;
#   (b) a clean restart: no worker is started where the extension is not
#       (no "not installed" line), every database with it is served;
#   (c) CREATE EXTENSION, CREATE DATABASE from a template with the
#       extension, and DROP EXTENSION are kept in the list: after a clean
#       restart the first two are served, the last gets no worker;
#   (d) after a crash (immediate stop), a list left by another timeline, or
#       a missing list (pg_upgrade): every database is looked at again, and
#       every database with the extension is served.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use LeaderTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('database_list');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'leader'");
$node->start;
my $list_file = $node->data_dir . '/leader_databases';

$node->safe_psql('postgres', 'CREATE DATABASE plain');
$node->safe_psql('postgres', 'CREATE DATABASE served');
$node->safe_psql('served', 'CREATE EXTENSION leader');
my %oid = map {
	$_ => $node->safe_psql('postgres', "SELECT oid FROM pg_database WHERE datname = '$_'")
} qw(postgres plain served);

my $log_offset;

# Restart ($mode: a clean "fast" stop, or "immediate"); returns the log of
# the new start.
sub restart
{
	my ($mode, $before_start) = @_;
	$node->stop($mode);
	$before_start->() if $before_start;
	$log_offset = -s $node->logfile;
	$node->start;
	return;
}

# Whether a worker was started in database $db since the last restart (its
# "not installed" line), waiting for the databases in @served to be served
# first.
sub probed
{
	my ($db, @served) = @_;
	worker_pid($node, $_) foreach @served;
	sleep(1);
	return slurp_file($node->logfile, $log_offset) =~
	  /extension "leader" is not installed in database $oid{$db}\b/;
}

sub looked_everywhere
{
	return slurp_file($node->logfile, $log_offset) =~
	  /leader: looking for the extension in every database/;
}

# ---- (a) first start ----

ok(-f $list_file, '(a) the list exists after the first start');
ok(worker_ends_lease($node, 'served', 'g-a'), '(a) served is served');

# ---- (b) a clean restart ----

restart('fast');
ok(!looked_everywhere(), '(b) after a clean restart the list is trusted');
ok(!probed('plain', 'served'), '(b) no worker is started in plain');
ok(!probed('postgres'), '(b) nor in postgres');
ok(worker_ends_lease($node, 'served', 'g-b'), '(b) served is served');

# ---- (c) kept in the list ----

$node->safe_psql('postgres', 'CREATE DATABASE later');
$node->safe_psql('later', 'CREATE EXTENSION leader');
$node->safe_psql('postgres', 'CREATE DATABASE copy TEMPLATE served');
$node->safe_psql('served', 'DROP EXTENSION leader');
$oid{$_} = $node->safe_psql('postgres', "SELECT oid FROM pg_database WHERE datname = '$_'")
  foreach qw(later copy);
ok( $node->poll_query_until(
		'postgres', q{
		SELECT count(*) = 0 FROM pg_stat_activity
		WHERE backend_type = 'leader worker' AND datname = 'served'}),
	'(c) DROP EXTENSION in served: its worker leaves');
restart('fast');
ok(!looked_everywhere(), '(c) the list is trusted');
ok(worker_ends_lease($node, $_, "g-c-$_"), "(c) $_ is served after a clean restart")
  foreach qw(later copy);
ok(!probed('served', 'later', 'copy'), '(c) no worker is started in served');
ok(!probed('plain'), '(c) nor in plain');

# ---- (d) a list that cannot be trusted ----

restart('immediate');
ok(looked_everywhere(), '(d) after a crash every database is looked at');
ok(worker_ends_lease($node, $_, "g-d1-$_"), "(d) after a crash, $_ is served")
  foreach qw(later copy);

restart(
	'fast',
	sub {
		my $text = slurp_file($list_file);
		$text =~ s/^(\d+) (\d+) 1$/"$1 " . ($2 + 1) . ' 1'/me
		  or die "unexpected list: $text";
		open my $fh, '>', $list_file or die $!;
		print $fh $text;
		close $fh;
	});
ok(looked_everywhere(), '(d) a list of another timeline: every database is looked at');
ok(worker_ends_lease($node, $_, "g-d2-$_"), "(d) then $_ is served")
  foreach qw(later copy);

restart('fast', sub { unlink $list_file or die $!; });
ok(looked_everywhere(), '(d) no list: every database is looked at');
ok(worker_ends_lease($node, $_, "g-d3-$_"), "(d) then $_ is served")
  foreach qw(later copy);
ok(probed('plain'), '(d) (plain was looked at too)');

$node->stop;
done_testing();
