# The library's magic block: from PostgreSQL 18 on it names the library and
# its version, which pg_get_loaded_modules() shows, and that version is the
# extension's default_version (leader.control).  Before 18 there is nothing
# to see and the test says so.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use LeaderTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = preloaded_node('module_magic');

SKIP:
{
	skip 'pg_get_loaded_modules() and PG_MODULE_MAGIC_EXT exist from PostgreSQL 18', 1
	  if $node->pg_version < 18;
	is( $node->safe_psql(
			'postgres', q{
		SELECT m.module_name, m.version = e.default_version
		FROM pg_get_loaded_modules() AS m, pg_available_extensions AS e
		WHERE m.file_name = 'leader.so' AND e.name = 'leader'}),
		'leader|t',
		'the loaded library names itself, with the extension\'s default version');
}

$node->stop;
done_testing();
