# Dump and restore keep every group's term (invariant 2), also where the
# roles of the leases do not exist: roles are stored by name, so the COPY of
# leader_lease never fails on a role, and the term floor of reclaimed groups
# is dumped with it.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use LeaderTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $source = PostgreSQL::Test::Cluster->new('source');
$source->init;
$source->start;
$source->safe_psql('postgres', q{
	CREATE ROLE app_role;
	CREATE ROLE dropped_role;
	CREATE DATABASE app;
	CREATE DATABASE old});
$source->safe_psql('app', 'CREATE EXTENSION leader');

# In app: "named" leads with term 2 (app_role's named lease); "gone" reaches
# term 3, falls vacant and is reclaimed when app_role, at its cap of 2
# groups, creates "fresh" (term 4, above the floor of 3); "orphan" is held
# by a role dropped before the dump (term 4 too: every group created anew
# starts above the floor).
$source->safe_psql('app', q{
	SET leader.max_groups_per_role = 2;
	SET ROLE app_role;
	SELECT leader_try_acquire('gone', '1 hour', 'svc'), leader_release('gone', 'svc'),
	       leader_try_acquire('gone', '1 hour', 'svc'), leader_release('gone', 'svc'),
	       leader_try_acquire('gone', '1 hour', 'svc'), leader_release('gone', 'svc');
	SELECT leader_try_acquire('named', '1 hour', 'svc'), leader_release('named', 'svc'),
	       leader_try_acquire('named', '1 hour', 'svc');
	SELECT leader_try_acquire('fresh', '1 hour', 'svc');
	SET ROLE dropped_role;
	SELECT leader_try_acquire('orphan', '1 hour', 'svc');
	RESET ROLE;
	DROP ROLE dropped_role;
});
is($source->safe_psql('app',
		'SELECT group_name, term, holder_role FROM leader_lease ORDER BY 1'),
	"fresh|4|app_role\nnamed|2|app_role\norphan|4|dropped_role",
	'source: "gone" was reclaimed; the leases keep their roles\' names');
is($source->safe_psql('app', 'SELECT term FROM leader_term_floor'),
	'3', 'source: the term floor holds the reclaimed group\'s last term');

my $dir = PostgreSQL::Test::Utils::tempdir();
$source->command_ok([ 'pg_dump', '-Fc', '-f', "$dir/app.dump", '-d', 'app' ],
	'pg_dump of the database');

# The restore goes to another cluster, where none of the roles exist.
my $target = PostgreSQL::Test::Cluster->new('target');
$target->init;
$target->start;
$target->safe_psql('postgres', 'CREATE DATABASE app');
$target->command_ok([ 'pg_restore', '--exit-on-error', '-d', 'app', "$dir/app.dump" ],
	'pg_restore succeeds in a cluster without the leases\' roles');
is($target->safe_psql('app', q{SELECT count(*) FROM pg_roles
		WHERE rolname IN ('app_role', 'dropped_role')}),
	'0', 'target: the roles do not exist');
is($target->safe_psql('app',
		'SELECT group_name, term, holder_role FROM leader_lease ORDER BY 1'),
	"fresh|4|app_role\nnamed|2|app_role\norphan|4|dropped_role",
	'target: every group keeps its term and its roles\' names');
is($target->safe_psql('app', 'SELECT term FROM leader_term_floor'),
	'3', 'target: the term floor is restored');
is($target->safe_psql('app', "SELECT extversion FROM pg_extension WHERE extname = 'leader'"),
	'1.1', 'target: the extension is at 1.1');

# A lease whose role does not exist is no one's: it cannot be renewed or
# released, and ends by force (or expiry).  The next terms are above the old.
$target->safe_psql('app', 'CREATE ROLE other_role');
is($target->safe_psql('app', q{
	SET ROLE other_role;
	SELECT leader_try_acquire('named', '1 hour', 'svc'), leader_release('named', 'svc'),
	       leader_current('named')}),
	'f|f|svc', 'target: nobody renews or releases the lease of a missing role');
is($target->safe_psql('app', q{
	SELECT leader_force_release('named');
	SET ROLE other_role;
	SELECT leader_try_acquire('named', '1 hour', 'svc'), leader_term('named', 'svc')}),
	"t\nt|3", 'target: after a forced release the next term of "named" is above 2');
is($target->safe_psql('app', q{
	SET ROLE other_role;
	SELECT leader_try_acquire('gone', '1 hour', 'svc'), leader_term('gone', 'svc')}),
	't|4', 'target: the reclaimed group created anew starts above its last term, 3');

# A role created with the name stored in the table owns those leases again
# (the name is the identity, as with a role renamed away: see the README).
$target->safe_psql('app', 'CREATE ROLE app_role');
is($target->safe_psql('app', q{
	SET ROLE app_role;
	SELECT leader_try_acquire('fresh', '1 hour', 'svc'), leader_term('fresh', 'svc')}),
	't|4', 'target: a role of the stored name renews the lease, keeping its term');

# A dump of a database still at version 1.0 (holder_role a regrole, dumped
# by name) restores as 1.1 (pg_dump names no version), where the role does
# not exist either.
$source->safe_psql('old', q{
	CREATE ROLE old_role;
	CREATE EXTENSION leader VERSION '1.0';
	INSERT INTO leader_lease VALUES ('named', 9, 'svc', 'named', 'old_role', NULL, NULL,
		now(), now(), now() + interval '1 hour')});
$source->command_ok([ 'pg_dump', '-Fc', '-f', "$dir/old.dump", '-d', 'old' ],
	'pg_dump of a database at version 1.0');
$target->safe_psql('postgres', 'CREATE DATABASE old');
$target->command_ok([ 'pg_restore', '--exit-on-error', '-d', 'old', "$dir/old.dump" ],
	'the dump of version 1.0 restores where its role does not exist');
is($target->safe_psql('old', q{
	SELECT extversion, group_name, term, holder_role, creator_role IS NULL
	FROM pg_extension, leader_lease WHERE extname = 'leader'}),
	'1.1|named|9|old_role|t', 'the restored 1.0 lease keeps its term, at version 1.1');

# What version 1.1 fixes: restored into a database where the extension is
# still at 1.0, the COPY of the regrole column fails on the missing role.
$target->safe_psql('postgres', 'CREATE DATABASE old_10');
$target->safe_psql('old_10', "CREATE EXTENSION leader VERSION '1.0'");
$target->command_fails_like(
	[ 'pg_restore', '--exit-on-error', '-d', 'old_10', "$dir/old.dump" ],
	qr/role "old_role" does not exist/,
	'at version 1.0 the same restore fails on the missing role');

$source->stop;
$target->stop;
done_testing();
