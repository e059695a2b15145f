/*
 * database_list.c
 *	  The durable list of the databases that may have the extension, kept in
 *	  the file leader_databases of the data directory, so that the launcher
 *	  (which connects to no database and cannot read pg_extension) starts
 *	  workers only there.  Only with the library preloaded.
 *
 * The list may hold more databases than have the extension, never fewer:
 * a database is added before any CREATE EXTENSION in it commits (and a
 * database created from a template, before CREATE DATABASE commits), and it
 * is removed only by its worker, once it found no extension there
 * (worker.c), or by the launcher once the database is gone.  An extra entry
 * costs one worker start, after which it is gone.  A CREATE EXTENSION holds
 * the database's list lock (a transaction-level lock in our advisory lock
 * space) to its commit, and the worker takes it before it looks: so it never
 * removes a database whose extension is being created.
 *
 * The file can be out of date where PostgreSQL's own changes went on
 * without it: in a copy of the data directory (a base backup taken while
 * the server ran, a standby, which replays CREATE EXTENSION from WAL) or
 * after pg_upgrade (no file).  So the launcher trusts it only if it is
 * there, was closed by the launcher as it left (and nothing changed it
 * since), and was written by this system on the current timeline (a
 * promotion starts a new one); otherwise it lists every database that
 * accepts connections, once.  While the launcher runs, the file is open:
 * a crash leaves it so, and the next start lists every database again.
 */
#include "leader.h"

#include "access/xlog.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "storage/lock.h"
#include "storage/lwlock.h"

#define LIST_FILE		"leader_databases"
#define LIST_TEMP_FILE	"leader_databases.tmp"
#define LIST_MAGIC		"leader databases 1"

/* The file's contents; read and written under leader_database_list_lock(). */
typedef struct DatabaseList
{
	uint64		system_identifier;
	TimeLineID	timeline;
	bool		closed;			/* by the launcher as it left */
	List	   *dboids;
} DatabaseList;

/* Read the file; false if it is missing or unreadable. */
static bool
list_read(DatabaseList *list)
{
	FILE	   *file = AllocateFile(LIST_FILE, "r");
	char		magic[sizeof(LIST_MAGIC)];
	unsigned long long system_identifier;
	unsigned int timeline;
	int			closed;
	unsigned int dboid;
	bool		ok;

	list->dboids = NIL;
	if (file == NULL)
		return false;
	ok = fgets(magic, sizeof(magic), file) != NULL &&
		strcmp(magic, LIST_MAGIC) == 0 &&
		fscanf(file, " %llu %u %d", &system_identifier, &timeline, &closed) == 3;
	if (ok)
	{
		list->system_identifier = (uint64) system_identifier;
		list->timeline = (TimeLineID) timeline;
		list->closed = closed != 0;
		while (fscanf(file, " %u", &dboid) == 1)
			list->dboids = lappend_oid(list->dboids, (Oid) dboid);
		ok = feof(file) && !ferror(file);
	}
	FreeFile(file);
	return ok;
}

/* Replace the file, durably (a crash leaves the old one or the new one). */
static void
list_write(const DatabaseList *list)
{
	FILE	   *file = AllocateFile(LIST_TEMP_FILE, "w");
	ListCell   *lc;

	if (file == NULL)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create file \"%s\": %m", LIST_TEMP_FILE)));
	fprintf(file, "%s\n%llu %u %d\n", LIST_MAGIC,
			(unsigned long long) list->system_identifier, (unsigned int) list->timeline,
			list->closed ? 1 : 0);
	foreach(lc, list->dboids)
		fprintf(file, "%u\n", lfirst_oid(lc));
	if (fflush(file) != 0 || pg_fsync(fileno(file)) != 0 || ferror(file))
	{
		int			save_errno = errno;

		FreeFile(file);
		errno = save_errno;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not write file \"%s\": %m", LIST_TEMP_FILE)));
	}
	if (FreeFile(file) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not close file \"%s\": %m", LIST_TEMP_FILE)));
	(void) durable_rename(LIST_TEMP_FILE, LIST_FILE, ERROR);
}

/*
 * Add (add) or remove the database.  Any change leaves the file open (see
 * database_list_open).  On an error, the abort releases the LWLock.
 */
static void
list_change(Oid dboid, bool add)
{
	DatabaseList list;

	LWLockAcquire(leader_database_list_lock(), LW_EXCLUSIVE);
	if (!list_read(&list))
	{
		/* no usable file: the launcher lists every database at its start */
		list.system_identifier = 0;
		list.timeline = 0;
	}
	if (add != list_member_oid(list.dboids, dboid))
	{
		list.dboids = add ? lappend_oid(list.dboids, dboid)
			: list_delete_oid(list.dboids, dboid);
		list.closed = false;
		list_write(&list);
	}
	LWLockRelease(leader_database_list_lock());
	list_free(list.dboids);
}

void
database_list_add(Oid dboid)
{
	list_change(dboid, true);
}

void
database_list_remove(Oid dboid)
{
	list_change(dboid, false);
}

/*
 * Take the database's list lock to the end of the transaction: CREATE
 * EXTENSION before adding the database, a worker before it looks whether
 * the extension is there.
 */
void
database_list_lock(Oid dboid)
{
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, dboid, 0, 0, LEADER_LOCKSPACE_DATABASE_LIST);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);
}

/*
 * For the launcher, at start: the databases to start a worker in, and the
 * file opened.  all_databases() is called when the file cannot be trusted,
 * and then is the list.
 */
List *
database_list_open(List *(*all_databases) (void))
{
	DatabaseList list;
	DatabaseList current;
	bool		trusted;

	LWLockAcquire(leader_database_list_lock(), LW_EXCLUSIVE);
	trusted = list_read(&list) && list.closed &&
		list.system_identifier == GetSystemIdentifier() &&
		list.timeline == GetWALInsertionTimeLine();
	LWLockRelease(leader_database_list_lock());
	if (!trusted)
	{
		ereport(LOG,
				(errmsg("leader: looking for the extension in every database"),
				 errdetail("The list of the databases that have it, file \"%s\", is missing or may be out of date.",
						   LIST_FILE)));
		list.dboids = list_concat_unique_oid(list.dboids, all_databases());
	}

	LWLockAcquire(leader_database_list_lock(), LW_EXCLUSIVE);
	if (list_read(&current))	/* and what was added meanwhile */
		list.dboids = list_concat_unique_oid(list.dboids, current.dboids);
	list.system_identifier = GetSystemIdentifier();
	list.timeline = GetWALInsertionTimeLine();
	list.closed = false;
	list_write(&list);
	LWLockRelease(leader_database_list_lock());
	return list.dboids;
}

/* For the launcher, as it leaves: the file is up to date, say so. */
void
database_list_close(void)
{
	DatabaseList list;

	LWLockAcquire(leader_database_list_lock(), LW_EXCLUSIVE);
	if (list_read(&list) &&
		list.system_identifier == GetSystemIdentifier() &&
		list.timeline == GetWALInsertionTimeLine())
	{
		list.closed = true;
		list_write(&list);
	}
	LWLockRelease(leader_database_list_lock());
}
