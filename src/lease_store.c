/*
 * lease_store.c
 *	  Reading and writing rows of the leader_lease table.
 *
 * The table is found through the extension's own schema, never through
 * search_path.  Rows are read with SnapshotSelf (the latest committed state
 * plus this transaction's own changes), because a lease is not snapshot
 * data: a call in a REPEATABLE READ or SERIALIZABLE transaction must still
 * decide on the current lease, like nextval() does on the current sequence
 * value.  Rows are written with the heap routines directly, and their index
 * entries with the executor's (which evaluate partial-index predicates and
 * index expressions), which bypasses table privileges (no role may write
 * the table itself) and takes no predicate locks.  Callers serialize writes
 * of a group with the group lock (group_lock.c), so the version read is the
 * one written over.  A store that wrote keeps its table lock to the end of
 * the transaction, as every writer of a table does; one that only read
 * gives it back at once, so that no later wait holds it.
 */
#include "leader.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/xact.h"
#include "executor/executor.h"
#include "nodes/makefuncs.h"
#include "storage/bufmgr.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

/* Columns of leader_lease, in the install script's order. */
enum
{
	COL_GROUP_NAME = 1,
	COL_TERM,
	COL_HOLDER,
	COL_HOLDER_KIND,
	COL_HOLDER_ROLE,
	COL_PID,
	COL_BACKEND_START,
	COL_ACQUIRED_AT,
	COL_RENEWED_AT,
	COL_EXPIRES_AT,
	LEASE_NCOLUMNS = COL_EXPIRES_AT
};

struct LeaseStore
{
	Relation	rel;
	Oid			pkey;
	LOCKMODE	lockmode;
	bool		wrote;			/* then its lock is kept to commit */
};

static Oid
lease_relation(Oid ext_namespace, const char *name)
{
	Oid			relid = get_relname_relid(name, ext_namespace);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation \"%s.%s\" of extension \"leader\" does not exist",
						get_namespace_name(ext_namespace), name),
				 errhint("Recreate the extension with DROP EXTENSION leader; CREATE EXTENSION leader.")));
	return relid;
}

LeaseStore *
lease_store_open(Oid ext_namespace, LOCKMODE lockmode)
{
	LeaseStore *store = palloc(sizeof(LeaseStore));

	store->rel = table_open(lease_relation(ext_namespace, "leader_lease"), lockmode);
	store->pkey = lease_relation(ext_namespace, "leader_lease_pkey");
	store->lockmode = lockmode;
	store->wrote = false;
	return store;
}

/* A store that wrote keeps its table lock to the end of the transaction. */
void
lease_store_close(LeaseStore *store)
{
	table_close(store->rel, store->wrote ? NoLock : store->lockmode);
	pfree(store);
}

static void
row_from_tuple(TupleDesc desc, HeapTuple tuple, LeaseRow *row)
{
	Datum		values[LEASE_NCOLUMNS];
	bool		nulls[LEASE_NCOLUMNS];

	heap_deform_tuple(tuple, desc, values, nulls);
	row->found = true;
	row->tid = tuple->t_self;
	row->group = TextDatumGetCString(values[COL_GROUP_NAME - 1]);
	row->term = DatumGetInt64(values[COL_TERM - 1]);
	row->held = !nulls[COL_HOLDER - 1];
	if (!row->held)
		return;
	row->holder = TextDatumGetCString(values[COL_HOLDER - 1]);
	row->kind = strcmp(TextDatumGetCString(values[COL_HOLDER_KIND - 1]), "named") == 0
		? HOLDER_NAMED : HOLDER_SESSION;
	row->role = DatumGetObjectId(values[COL_HOLDER_ROLE - 1]);
	row->has_pid = !nulls[COL_PID - 1];
	row->pid = row->has_pid ? DatumGetInt32(values[COL_PID - 1]) : 0;
	row->backend_start = nulls[COL_BACKEND_START - 1] ? 0 :
		DatumGetTimestampTz(values[COL_BACKEND_START - 1]);
	row->acquired_at = DatumGetTimestampTz(values[COL_ACQUIRED_AT - 1]);
	row->renewed_at = DatumGetTimestampTz(values[COL_RENEWED_AT - 1]);
	row->expires_at = DatumGetTimestampTz(values[COL_EXPIRES_AT - 1]);
}

/* Fill *row with the group's row; row->found is false when it has none. */
void
lease_store_read(LeaseStore *store, const char *group, LeaseRow *row)
{
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;

	memset(row, 0, sizeof(LeaseRow));
	row->group = pstrdup(group);
	ScanKeyInit(&key, COL_GROUP_NAME, BTEqualStrategyNumber, F_TEXTEQ,
				CStringGetTextDatum(group));

	/*
	 * SnapshotSelf judges each version when the scan reaches it, so a
	 * non-HOT update committing between the scan's visit of the new and the
	 * old index entry can hide both: a group found missing is looked up once
	 * more.
	 */
	for (int attempt = 0; attempt < 2 && !row->found; attempt++)
	{
		scan = systable_beginscan(store->rel, store->pkey, true, SnapshotSelf, 1, &key);
		tuple = systable_getnext(scan);
		if (HeapTupleIsValid(tuple))
			row_from_tuple(RelationGetDescr(store->rel), tuple, row);
		systable_endscan(scan);
	}
}

/*
 * Add index entries for a new heap tuple (not needed after a HOT update).
 * It is never flagged as an UPDATE: that flag only feeds an index hint, and
 * computing the hint needs a range table this bare executor state lacks.
 */
static void
insert_index_entries(Relation rel, HeapTuple tuple)
{
	EState	   *estate = CreateExecutorState();
	ResultRelInfo *result_rel = makeNode(ResultRelInfo);
	TupleTableSlot *slot;

	InitResultRelInfo(result_rel, rel, 1, NULL, 0);
	ExecOpenIndices(result_rel, false);
	slot = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsHeapTuple);
	ExecStoreHeapTuple(tuple, slot, false);
	(void) ExecInsertIndexTuples(result_rel, slot, estate, false, false, NULL, NIL);
	ExecDropSingleTupleTableSlot(slot);
	ExecCloseIndices(result_rel);
	FreeExecutorState(estate);
}

/* Insert or update the group's row from *row, and make it visible. */
void
lease_store_write(LeaseStore *store, LeaseRow *row)
{
	Datum		values[LEASE_NCOLUMNS] = {0};
	bool		nulls[LEASE_NCOLUMNS] = {0};
	HeapTuple	tuple;

	values[COL_GROUP_NAME - 1] = CStringGetTextDatum(row->group);
	values[COL_TERM - 1] = Int64GetDatum(row->term);
	if (row->held)
	{
		values[COL_HOLDER - 1] = CStringGetTextDatum(row->holder);
		values[COL_HOLDER_KIND - 1] =
			CStringGetTextDatum(row->kind == HOLDER_NAMED ? "named" : "session");
		values[COL_HOLDER_ROLE - 1] = ObjectIdGetDatum(row->role);
		values[COL_PID - 1] = Int32GetDatum(row->pid);
		nulls[COL_PID - 1] = !row->has_pid;
		values[COL_BACKEND_START - 1] = TimestampTzGetDatum(row->backend_start);
		nulls[COL_BACKEND_START - 1] = row->kind == HOLDER_NAMED;
		values[COL_ACQUIRED_AT - 1] = TimestampTzGetDatum(row->acquired_at);
		values[COL_RENEWED_AT - 1] = TimestampTzGetDatum(row->renewed_at);
		values[COL_EXPIRES_AT - 1] = TimestampTzGetDatum(row->expires_at);
	}
	else
	{
		for (int col = COL_HOLDER; col <= COL_EXPIRES_AT; col++)
			nulls[col - 1] = true;
	}

	tuple = heap_form_tuple(RelationGetDescr(store->rel), values, nulls);
	if (row->found)
		simple_heap_update(store->rel, &row->tid, tuple);
	else
		simple_heap_insert(store->rel, tuple);
	if (!HeapTupleIsHeapOnly(tuple))
		insert_index_entries(store->rel, tuple);
	store->wrote = true;
	row->found = true;
	row->tid = tuple->t_self;
	heap_freetuple(tuple);
	CommandCounterIncrement();
}

/*
 * Call visit(row, arg) for every group whose leadership is recorded, read
 * through the partial index leader_lease_held_idx with a fresh MVCC
 * snapshot: one consistent view of the held leases, each read once.  A
 * lease that changes after the snapshot is the business of whoever changes
 * it (it tells the database's worker at commit).
 */
void
lease_store_visit_held(LeaseStore *store, LeaseVisitor visit, void *arg)
{
	Oid			held_index = lease_relation(RelationGetNamespace(store->rel),
											"leader_lease_held_idx");
	Snapshot	snapshot = RegisterSnapshot(GetLatestSnapshot());
	SysScanDesc scan;
	HeapTuple	tuple;

	scan = systable_beginscan(store->rel, held_index, true, snapshot, 0, NULL);
	while (HeapTupleIsValid(tuple = systable_getnext(scan)))
	{
		LeaseRow	row;

		memset(&row, 0, sizeof(LeaseRow));
		row_from_tuple(RelationGetDescr(store->rel), tuple, &row);
		if (row.held)
			visit(&row, arg);
	}
	systable_endscan(scan);
	UnregisterSnapshot(snapshot);
}

/*
 * Does the table hold at least n groups?  A table with too few pages to hold
 * n rows is not scanned at all, so the check costs nothing until the table
 * nears the cap.
 */
bool
lease_store_has_at_least(LeaseStore *store, int64 n)
{
	TableScanDesc scan;
	int64		count = 0;

	if ((int64) RelationGetNumberOfBlocks(store->rel) * MaxHeapTuplesPerPage < n)
		return false;
	scan = table_beginscan(store->rel, SnapshotSelf, 0, NULL);
	while (count < n && heap_getnext(scan, ForwardScanDirection) != NULL)
		count++;
	table_endscan(scan);
	return count >= n;
}
