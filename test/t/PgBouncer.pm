# PgBouncer: a PgBouncer (Debian's pgbouncer) in front of a test node, for the
# tests that run clients through a pooler.  It owns
#   - writing the configuration and starting PgBouncer as a child of the test
#     (start_pgbouncer), in transaction pooling with a small pool, with a
#     second database in session pooling; clients need no password and may use
#     the admin console;
#   - connection strings and one-off psql runs through it (connstr,
#     run_psql, show);
#   - stopping it (stop), also when the test dies first (the END block).
# Its log goes next to the server logs, where it outlives the test.
#
#   my $bouncer = PgBouncer->start_pgbouncer($node, pool_size => 2);
#   $bouncer->connstr('postgres', 'app-one');     # transaction pooling
#   $bouncer->connstr('postgres_session', 'l');   # session pooling
package PgBouncer;

use strict;
use warnings;

use File::Basename;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my @running;    # the PgBouncers started and not stopped yet

# The pgbouncer program: Debian's package installs it in /usr/sbin, which is
# not in every user's PATH.  Dies with a hint if it is not installed.
sub program
{
	my ($pgbouncer) =
	  grep { -x $_ }
	  map { "$_/pgbouncer" } (split(/:/, $ENV{PATH} // ''), '/usr/sbin',
		'/usr/local/sbin');
	ok(defined $pgbouncer, 'the pgbouncer program is installed')
	  or die 'pgbouncer not found in PATH nor in /usr/sbin: '
	  . 'install it (Debian: apt-get install pgbouncer)';
	return $pgbouncer;
}

# Start a PgBouncer for database postgres of $node on a free port of
# 127.0.0.1; waits until it answers.  %opts: pool_size (server connections
# per database and user, default 2).  Databases: "postgres" in transaction
# pooling, "postgres_session" in session pooling, both the node's postgres.
sub start_pgbouncer
{
	my ($class, $node, %opts) = @_;
	my $pgbouncer = program();
	my $self = bless {
		node => $node,
		pool_size => $opts{pool_size} // 2,
		dir => PostgreSQL::Test::Utils::tempdir,
		port => PostgreSQL::Test::Cluster::get_free_port(),
		user => $node->safe_psql('postgres', 'SELECT current_user'),
		log => $PostgreSQL::Test::Utils::log_path . '/'
		  . basename($0, '.pl')
		  . '_pgbouncer.log',
		psql => $node->installed_command('psql'),
	}, $class;
	my ($dir, $host, $port) = ($self->{dir}, $node->host, $node->port);

	# auth_type trust needs the user in the auth file all the same.  No
	# server_reset_query_always: in transaction pooling a server connection
	# goes from client to client as it is.  No sanity-check query on a server
	# connection between clients (server_check_delay): nothing but the test's
	# statements runs on them.
	PostgreSQL::Test::Utils::append_to_file("$dir/userlist.txt",
		qq{"$self->{user}" ""\n});
	PostgreSQL::Test::Utils::append_to_file(
		"$dir/pgbouncer.ini", qq{[databases]
postgres = host=$host port=$port dbname=postgres
postgres_session = host=$host port=$port dbname=postgres pool_mode=session

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $self->{port}
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
admin_users = $self->{user}
pool_mode = transaction
default_pool_size = $self->{pool_size}
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 100
server_check_delay = 3600
logfile = $self->{log}
pidfile = $dir/pgbouncer.pid
});

	# In the foreground, as a child of the test, logging to its log file
	# only (-q).
	$self->{run} = IPC::Run::start([ $pgbouncer, '-q', "$dir/pgbouncer.ini" ],
		'<', \undef, '>&', "$self->{log}.stderr");
	$self->{pid} = $self->{run}{KIDS}[0]{PID};
	push @running, $self;

	my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
	until (($self->run_psql('pgbouncer', 'SHOW VERSION'))[0] == 0)
	{
		die "pgbouncer did not start; see $self->{log}"
		  if time > $deadline || !$self->{run}->pumpable;
		usleep(50_000);
	}
	return $self;
}

# A connection string for database $db through PgBouncer, as client $appname.
# It caps the protocol version at 3.0, the one PgBouncer speaks: libpq of 19
# asks for a higher one by default (a made-up one, to exercise negotiation),
# which PgBouncer 1.18 refuses.  libpq knows max_protocol_version from 18.
sub connstr
{
	my ($self, $db, $appname) = @_;
	my $protocol =
	  $self->{node}->pg_version >= 18 ? ' max_protocol_version=3.0' : '';
	return "host=127.0.0.1 port=$self->{port} dbname=$db user=$self->{user}"
	  . " application_name=$appname$protocol";
}

# Run $sql in a psql of its own on database $db through PgBouncer; returns
# (exit code, stdout, stderr).  Output is unaligned with a header line.
sub run_psql
{
	my ($self, $db, $sql) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run(
		[
			$self->{psql}, '-X', '-A', '-q', '-P', 'footer=off',
			'-d', $self->connstr($db, 'admin'),
			'-c', $sql
		],
		'<', \undef, '>', \$out, '2>', \$err,
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	return ($? >> 8, $out, $err);
}

# The rows of the admin console's SHOW $what, as hashes by column name.
sub show
{
	my ($self, $what) = @_;
	my ($rc, $out, $err) = $self->run_psql('pgbouncer', "SHOW $what");
	die "SHOW $what failed: $err" if $rc;
	my ($header, @lines) = split /\n/, $out;
	my @columns = split /\|/, $header, -1;
	my @rows;
	foreach my $line (@lines)
	{
		my %row;
		@row{@columns} = split /\|/, $line, -1;
		push @rows, \%row;
	}
	return @rows;
}

# Stop it with SIGTERM (SIGKILL if it has not ended after the harness's
# timeout); returns whether SIGTERM was enough.
sub stop
{
	my ($self) = @_;
	@running = grep { $_ != $self } @running;
	# kill_kill answers whether it needed SIGKILL.
	return !$self->{run}->kill_kill(
		grace => $PostgreSQL::Test::Utils::timeout_default);
}

END
{
	# Keep the test's exit status: reaping a child sets $?.
	local $?;
	foreach my $self (@running)
	{
		eval { $self->{run}->kill_kill(grace => 5); };
	}
}

1;
