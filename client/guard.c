/*
 * guard.c: the guard, the process between "run" and its COMMAND that makes
 * sure COMMAND leaves nothing behind.
 *
 * "run" forks the guard, and the guard forks COMMAND, in a process group of
 * its own.  The guard is a child subreaper (Linux, PR_SET_CHILD_SUBREAPER):
 * a process COMMAND started, in the foreground or the background, in any
 * process group or session, is reparented to the guard when its own parent
 * dies, so the guard has children exactly as long as anything of COMMAND's
 * tree is alive, and finds all of it under itself in /proc.
 *
 * Stopping the tree: SIGTERM to COMMAND's process group and to every
 * descendant, then, when the grace is over, SIGKILL to every descendant,
 * again and again until the guard has no child left.  The guard stops the
 * tree when
 *   - "run" asks it to (GUARD_STOP; GUARD_KILL ends the grace at once);
 *   - "run" dies, whatever killed it: the control pipe, whose only writer is
 *     "run", reads end-of-file.  The grace then ends at the latest at the
 *     lease's deadline, which "run" sends after each confirmed renewal
 *     (GUARD_DEADLINE): from then on the server may let another candidate
 *     lead, and nothing of this leadership may be left by then;
 *   - COMMAND exits by itself: whatever it left running is stopped the same
 *     way.
 * Only when the tree is gone does the guard write COMMAND's status (as a
 * shell reports it) on the status pipe, and exit.
 *
 * The guard keeps a duplicate of the connection's socket open, inherited at
 * fork and never used: a session-bound lease ends when the server sees the
 * connection close, which cannot happen before the guard exits, so not
 * before the tree is gone, even if "run" was killed.  "run" releases and
 * disconnects only once the guard has exited.
 *
 * Descendants are found by reading every /proc/PID/stat (their parent pids).
 * A pid read there could in theory be reused before it is signalled, if that
 * process was reaped by its own parent in between and the kernel's pids
 * wrapped around meanwhile; the guard's own children (reaped only by the
 * guard) cannot be.
 *
 * Also here: the check that COMMAND can be executed, resolved through PATH as
 * execvp does, which "run" makes before it connects: a command that cannot
 * run takes no term.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <unistd.h>

#include "pg_leader.h"

/* What "run" tells the guard, one message per write (atomic on a pipe). */
typedef enum GuardRequest
{
	GUARD_DEADLINE,				/* the lease lasts at least until "deadline" */
	GUARD_STOP,					/* stop the tree: SIGTERM, SIGKILL after the grace */
	GUARD_KILL					/* SIGKILL the tree now */
} GuardRequest;

typedef struct GuardMessage
{
	GuardRequest request;
	int64_t		deadline;		/* monotonic ms, for GUARD_DEADLINE */
} GuardMessage;

/* The guard's state, in the guard process. */
typedef struct GuardState
{
	pid_t		command;		/* COMMAND's pid, 0 once reaped */
	pid_t		command_group;	/* COMMAND's process group (its pid) */
	int			code;			/* COMMAND's status, once reaped */
	int			control_fd;		/* -1 once "run" is gone */
	int64_t		grace_ms;
	int64_t		deadline;		/* the lease's, by the monotonic clock */
	int64_t		kill_at;		/* -1: not stopping; else when SIGKILL is due */
	bool		killing;		/* the grace is over */
} GuardState;

/* ---- is COMMAND executable? ---- */

/*
 * Whether "path" is a regular file this process may execute; *denied is set
 * if something is there that cannot be executed.
 */
static bool
guard_executable(const char *path, bool *denied)
{
	struct stat st;

	if (stat(path, &st) != 0)
	{
		if (errno != ENOENT && errno != ENOTDIR)
			*denied = true;
		return false;
	}
	if (S_ISREG(st.st_mode) && faccessat(AT_FDCWD, path, X_OK, AT_EACCESS) == 0)
		return true;
	*denied = true;
	return false;
}

int
guard_check_command(const char *file)
{
	bool		denied = false;

	if (strchr(file, '/') != NULL)
	{
		if (guard_executable(file, &denied))
			return EXIT_OK;
	}
	else if (*file != '\0')
	{
		/* As execvp: PATH, or the system's default; an empty entry is ".". */
		const char *path = getenv("PATH");
		char		default_path[256];
		char	   *candidate;

		if (path == NULL)
		{
			if (confstr(_CS_PATH, default_path, sizeof(default_path)) == 0)
				snprintf(default_path, sizeof(default_path), "/bin:/usr/bin");
			path = default_path;
		}
		candidate = malloc(strlen(path) + strlen(file) + 3);
		if (candidate == NULL)
		{
			fprintf(stderr, "%s: out of memory\n", progname);
			exit(EXIT_FAILED);
		}
		for (const char *dir = path;;)
		{
			const char *end = strchr(dir, ':');
			int			len = end ? (int) (end - dir) : (int) strlen(dir);

			sprintf(candidate, "%.*s/%s", len > 0 ? len : 1, len > 0 ? dir : ".", file);
			if (guard_executable(candidate, &denied))
			{
				free(candidate);
				return EXIT_OK;
			}
			if (end == NULL)
				break;
			dir = end + 1;
		}
		free(candidate);
	}
	if (denied)
	{
		fprintf(stderr, "%s: cannot run \"%s\": not an executable file\n", progname, file);
		return EXIT_CANNOT_EXEC;
	}
	fprintf(stderr, "%s: cannot run \"%s\": %s\n", progname, file,
			strchr(file, '/') ? "no such file" : "not found in PATH");
	return EXIT_NOT_FOUND;
}

/* ---- in the guard ---- */

/* An exit status as a shell reports it. */
static int
guard_status_code(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return EXIT_FAILED;
}

/* The parent pid in the text of a /proc/PID/stat ("pid (comm) state ppid ..."), or -1. */
static pid_t
guard_stat_parent(const char *stat_text)
{
	const char *p = strrchr(stat_text, ')');
	char		state;
	int			ppid;

	if (p == NULL || sscanf(p + 1, " %c %d", &state, &ppid) != 2)
		return -1;
	return ppid;
}

/* Send "sig" to every process under the guard (SIGTERM: and to COMMAND's process group). */
static void
guard_signal_tree(const GuardState *s, int sig)
{
	DIR		   *proc;
	struct dirent *e;
	pid_t	   *pids = NULL;
	pid_t	   *parents = NULL;
	bool	   *under = NULL;
	int			n = 0;
	int			allocated = 0;
	pid_t		guard = getpid();
	bool		grew;

	if (sig == SIGTERM)
		kill(-s->command_group, sig);

	proc = opendir("/proc");
	if (proc == NULL)
		return;
	while ((e = readdir(proc)) != NULL)
	{
		char		path[64];
		char		text[512];
		FILE	   *f;
		size_t		len;
		pid_t		parent;

		if (!isdigit((unsigned char) e->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue;			/* gone meanwhile */
		len = fread(text, 1, sizeof(text) - 1, f);
		fclose(f);
		text[len] = '\0';
		if ((parent = guard_stat_parent(text)) <= 0)
			continue;
		if (n == allocated)
		{
			int			more = allocated ? allocated * 2 : 256;
			pid_t	   *more_pids = realloc(pids, more * sizeof(pid_t));
			pid_t	   *more_parents;

			if (more_pids == NULL)
				break;			/* out of memory: signal those known */
			pids = more_pids;
			more_parents = realloc(parents, more * sizeof(pid_t));
			if (more_parents == NULL)
				break;
			parents = more_parents;
			allocated = more;
		}
		pids[n] = atoi(e->d_name);
		parents[n] = parent;
		n++;
	}
	closedir(proc);

	/* Everything whose chain of parents leads to the guard. */
	under = calloc(n > 0 ? n : 1, sizeof(bool));
	if (pids == NULL || parents == NULL || under == NULL)
		n = 0;
	do
	{
		grew = false;
		for (int i = 0; i < n; i++)
		{
			if (under[i])
				continue;
			if (parents[i] == guard)
				under[i] = true;
			for (int j = 0; j < n && !under[i]; j++)
				under[i] = under[j] && pids[j] == parents[i];
			grew |= under[i];
		}
	} while (grew);

	for (int i = 0; i < n; i++)
	{
		if (under[i])
			kill(pids[i], sig);
	}
	free(pids);
	free(parents);
	free(under);
}

/* Start stopping the tree (once): SIGTERM now, SIGKILL when the grace is over. */
static void
guard_begin_stop(GuardState *s)
{
	if (s->kill_at >= 0)
		return;
	s->kill_at = now_ms() + s->grace_ms;
	if (s->control_fd < 0 && s->deadline < s->kill_at)
		s->kill_at = s->deadline;
	guard_signal_tree(s, SIGTERM);
}

/* Read what "run" sent; its end-of-file means that "run" is gone. */
static void
guard_read_control(GuardState *s)
{
	GuardMessage m;
	ssize_t		r;

	while (s->control_fd >= 0 &&
		   (r = read(s->control_fd, &m, sizeof(m))) != 0)
	{
		if (r < 0)
		{
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			break;				/* treat like end-of-file */
		}
		if (r != sizeof(m))
			continue;			/* cannot happen: writes of a message are atomic */
		if (m.request == GUARD_DEADLINE)
			s->deadline = m.deadline;
		else if (m.request == GUARD_STOP)
			guard_begin_stop(s);
		else if (m.request == GUARD_KILL)
		{
			guard_begin_stop(s);
			s->kill_at = now_ms();
			s->killing = true;
		}
	}
	if (s->control_fd < 0)
		return;

	/* "run" died: stop the tree, by the lease's deadline at the latest. */
	close(s->control_fd);
	s->control_fd = -1;
	fprintf(stderr, "%s: the runner died; stopping the command and everything it started\n",
			progname);
	if (s->kill_at < 0)
		guard_begin_stop(s);
	else if (s->deadline < s->kill_at)
		s->kill_at = s->deadline;
}

/* Fork COMMAND, in a process group of its own; its pid, or -1. */
static pid_t
guard_fork_command(char **command, const char *const *env, int keep_fd)
{
	pid_t		guard = getpid();
	pid_t		pid;

	pid = fork();
	if (pid < 0)
	{
		fprintf(stderr, "%s: could not fork: %s\n", progname, strerror(errno));
		return -1;
	}
	if (pid == 0)
	{
		int			err;

		setpgid(0, 0);
#ifdef __linux__
		/* Should the guard itself be killed (SIGKILL), COMMAND goes with it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != guard)
			_exit(EXIT_LOST);
#endif
		/* Not the connection, nor our dispositions (the pipes are close-on-exec). */
		close(keep_fd);
		signal(SIGPIPE, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		signal(SIGCHLD, SIG_DFL);
		for (int i = 0; env[i] != NULL; i += 2)
			setenv(env[i], env[i + 1], 1);
		execvp(command[0], command);
		err = errno;
		fprintf(stderr, "%s: cannot run \"%s\": %s\n", progname, command[0], strerror(err));
		_exit(err == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_EXEC);
	}
	setpgid(pid, pid);			/* also here: whichever runs first wins the race */
	return pid;
}

static void
guard_main(pid_t runner, int control_fd, int status_fd, char **command,
		   const char *const *env, int64_t grace_ms, int64_t deadline, int keep_fd)
{
	GuardState	s = {0, 0, EXIT_FAILED, control_fd, grace_ms, deadline, -1, false};
	bool		left_over_said = false;

	/* Our own signal pipe; SIGINT, SIGTERM and SIGHUP are for "run" to act on. */
	signals_install(true);
#ifdef __linux__
	prctl(PR_SET_CHILD_SUBREAPER, 1);
#endif
	if (getppid() != runner)
		_exit(EXIT_LOST);		/* "run" is gone already: start nothing */
	fcntl(control_fd, F_SETFL, fcntl(control_fd, F_GETFL) | O_NONBLOCK);

	s.command = guard_fork_command(command, env, keep_fd);
	if (s.command < 0)
	{
		s.command = 0;
		if (write(status_fd, &s.code, sizeof(s.code)) < 0)
		{
			/* "run" is gone: nobody to tell */
		}
		_exit(EXIT_OK);
	}
	s.command_group = s.command;

	for (;;)
	{
		int			status;
		pid_t		w;
		int64_t		now;
		int64_t		timeout = -1;

		while ((w = waitpid(-1, &status, WNOHANG)) > 0)
		{
			if (w == s.command)
			{
				s.code = guard_status_code(status);
				s.command = 0;
			}
		}
		if (w < 0 && errno == ECHILD)
			break;				/* the whole tree is gone */

		if (s.command == 0 && s.kill_at < 0)
		{
			if (!left_over_said)
				fprintf(stderr, "%s: the command exited; stopping what it left running\n",
						progname);
			left_over_said = true;
			guard_begin_stop(&s);
		}
		now = now_ms();
		if (s.kill_at >= 0 && !s.killing && now >= s.kill_at)
		{
			if (s.control_fd < 0 && s.kill_at == s.deadline)
				fprintf(stderr, "%s: the lease runs out; killing the command and everything it started\n",
						progname);
			else
				fprintf(stderr, "%s: the command did not stop within the grace period; killing it\n",
						progname);
			s.killing = true;
		}
		if (s.killing)
		{
			guard_signal_tree(&s, SIGKILL);
			timeout = 10;		/* until the last one is reaped */
		}
		else if (s.kill_at >= 0)
			timeout = s.kill_at - now;

		wait_for_input(s.control_fd, timeout);
		while (signals_next() != 0)
			;					/* SIGCHLD: reap above; others: ignored */
		guard_read_control(&s);
	}

	if (write(status_fd, &s.code, sizeof(s.code)) < 0)
	{
		/* "run" is gone: nobody to tell */
	}
	_exit(EXIT_OK);
}

/* ---- in "run" ---- */

bool
guard_start(Guard *g, char **command, const char *const *env,
			int64_t grace_ms, int64_t deadline, int keep_fd)
{
	int			control[2];
	int			status[2];
	pid_t		runner = getpid();

	if (pipe(control) != 0 || pipe(status) != 0)
	{
		fprintf(stderr, "%s: could not create a pipe: %s\n", progname, strerror(errno));
		return false;
	}
	for (int i = 0; i < 2; i++)
	{
		fcntl(control[i], F_SETFD, FD_CLOEXEC);
		fcntl(status[i], F_SETFD, FD_CLOEXEC);
	}
	fflush(stdout);
	fflush(stderr);
	g->pid = fork();
	if (g->pid < 0)
	{
		fprintf(stderr, "%s: could not fork: %s\n", progname, strerror(errno));
		close(control[0]);
		close(control[1]);
		close(status[0]);
		close(status[1]);
		return false;
	}
	if (g->pid == 0)
	{
		/* Only "run" may hold the control pipe's write end: its EOF is "run" dying. */
		close(control[1]);
		close(status[0]);
		guard_main(runner, control[0], status[1], command, env, grace_ms, deadline, keep_fd);
	}
	close(control[0]);
	close(status[1]);
	g->control_fd = control[1];
	g->status_fd = status[0];
	return true;
}

static void
guard_send(Guard *g, GuardRequest request, int64_t deadline)
{
	GuardMessage m = {request, deadline};

	/* (If the guard has exited meanwhile, guard_done tells; SIGPIPE is ignored.) */
	if (write(g->control_fd, &m, sizeof(m)) < 0)
	{
		/* the guard is gone: nothing left to tell it */
	}
}

void
guard_set_deadline(Guard *g, int64_t deadline)
{
	guard_send(g, GUARD_DEADLINE, deadline);
}

void
guard_stop(Guard *g, bool at_once)
{
	guard_send(g, at_once ? GUARD_KILL : GUARD_STOP, 0);
}

bool
guard_done(Guard *g, int *code)
{
	int			status;

	if (waitpid(g->pid, &status, WNOHANG) != g->pid)
		return false;
	if (read(g->status_fd, code, sizeof(*code)) != sizeof(*code))
	{
		fprintf(stderr, "%s: the guard process of the command ended without its status\n",
				progname);
		*code = EXIT_FAILED;
	}
	close(g->control_fd);
	close(g->status_fd);
	g->pid = 0;
	return true;
}
