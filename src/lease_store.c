/*
 * lease_store.c
 *	  Reading and writing rows of the leader_lease table, and the one value
 *	  of the leader_term_floor table.
 *
 * The tables are found through the extension's own schema, never through
 * search_path.  Opening the store maps the columns this library knows, by
 * name and type, onto the table's attributes (so dropped columns do no
 * harm), and refuses a table of any other shape with a clear error, such as
 * one still at version 1.0 or one a superuser has added a column to.  Roles
 * are stored by name (type name), so that a dump restores where a role does
 * not exist; here they are turned into Oids and back, a name that matches
 * no role reading as InvalidOid.
 *
 * Rows are read with SnapshotSelf (the latest committed state plus this
 * transaction's own changes), because a lease is not snapshot data: a call
 * in a REPEATABLE READ or SERIALIZABLE transaction must still decide on the
 * current lease, like nextval() does on the current sequence value; counts
 * and scans over many rows use a fresh MVCC snapshot instead, which sees
 * each row once.  Rows are written with the heap routines directly, and
 * their index entries with the executor's (which evaluate partial-index
 * predicates and index expressions), which bypasses table privileges (no
 * role may write the tables themselves) and takes no predicate locks.
 * Callers serialize writes of a group with the group lock (group_lock.c),
 * and of the term floor with the term floor lock (group_capacity.c), so the
 * version read is the one written over.  A store that wrote keeps its table
 * lock to the end of the transaction, as every writer of a table does; one
 * that only read gives it back at once, so that no later wait holds it.
 */
#include "leader.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "storage/bufmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

/* The columns of leader_lease this library knows (the table's order may differ). */
typedef enum LeaseColumn
{
	COL_GROUP_NAME,
	COL_TERM,
	COL_HOLDER,
	COL_HOLDER_KIND,
	COL_HOLDER_ROLE,
	COL_PID,
	COL_BACKEND_START,
	COL_ACQUIRED_AT,
	COL_RENEWED_AT,
	COL_EXPIRES_AT,
	COL_CREATOR_ROLE,
	LEASE_NCOLUMNS
} LeaseColumn;

typedef struct ColumnSpec
{
	const char *name;
	Oid			type;
} ColumnSpec;

static const ColumnSpec lease_columns[LEASE_NCOLUMNS] = {
	[COL_GROUP_NAME] = {"group_name", TEXTOID},
	[COL_TERM] = {"term", INT8OID},
	[COL_HOLDER] = {"holder", TEXTOID},
	[COL_HOLDER_KIND] = {"holder_kind", TEXTOID},
	[COL_HOLDER_ROLE] = {"holder_role", NAMEOID},
	[COL_PID] = {"pid", INT4OID},
	[COL_BACKEND_START] = {"backend_start", TIMESTAMPTZOID},
	[COL_ACQUIRED_AT] = {"acquired_at", TIMESTAMPTZOID},
	[COL_RENEWED_AT] = {"renewed_at", TIMESTAMPTZOID},
	[COL_EXPIRES_AT] = {"expires_at", TIMESTAMPTZOID},
	[COL_CREATOR_ROLE] = {"creator_role", NAMEOID},
};

/* leader_term_floor's one column. */
static const ColumnSpec floor_columns[1] = {{"term", INT8OID}};

struct LeaseStore
{
	Relation	rel;
	Oid			pkey;
	Oid			ext_namespace;
	LOCKMODE	lockmode;
	bool		wrote;			/* then its lock is kept to commit */
	AttrNumber	attnum[LEASE_NCOLUMNS]; /* where each column is in rel */
};

/* A column's value in values/nulls arrays indexed by the table's attributes. */
#define COLUMN(array, store, col)	((array)[(store)->attnum[(col)] - 1])

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

/*
 * Map each expected column onto rel's attribute of the same name: attnum[]
 * and type[] (0 when there is none).  Returns NULL if every column is there
 * with its type and rel has no other, else a sentence saying what differs.
 */
static char *
map_columns(Relation rel, const ColumnSpec *columns, int ncolumns,
			AttrNumber *attnum, Oid *type)
{
	TupleDesc	desc = RelationGetDescr(rel);
	const char *extra = NULL;
	int			next = 0;

	memset(attnum, 0, ncolumns * sizeof(AttrNumber));
	memset(type, 0, ncolumns * sizeof(Oid));
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		int			col = next;

		if (att->attisdropped)
			continue;
		/* usually the columns come in the expected order: one comparison each */
		if (col >= ncolumns || strcmp(NameStr(att->attname), columns[col].name) != 0)
			for (col = 0; col < ncolumns; col++)
				if (strcmp(NameStr(att->attname), columns[col].name) == 0)
					break;
		if (col < ncolumns)
		{
			attnum[col] = att->attnum;
			type[col] = att->atttypid;
		}
		else if (extra == NULL)
			extra = NameStr(att->attname);
		next = col + 1;
	}
	for (int col = 0; col < ncolumns; col++)
	{
		if (attnum[col] == 0)
			return psprintf("Column \"%s\" is missing.", columns[col].name);
		if (type[col] != columns[col].type)
			return psprintf("Column \"%s\" has type %s instead of %s.", columns[col].name,
							format_type_be(type[col]), format_type_be(columns[col].type));
	}
	if (extra != NULL)
		return psprintf("Column \"%s\" is not one of the extension's.", extra);
	return NULL;
}

/*
 * Version 1.0's leader_lease: holder_role of type regrole, no creator_role,
 * every other column as now.
 */
static bool
is_version_1_0_shape(const AttrNumber *attnum, const Oid *type)
{
	for (int col = 0; col < LEASE_NCOLUMNS; col++)
	{
		if (col == COL_CREATOR_ROLE ? attnum[col] != 0 :
			type[col] != (col == COL_HOLDER_ROLE ? REGROLEOID : lease_columns[col].type))
			return false;
	}
	return true;
}

static void
shape_error(Relation rel, const char *problem, bool version_1_0)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("table \"%s.%s\" does not have the columns that extension \"leader\" expects",
					get_namespace_name(RelationGetNamespace(rel)), RelationGetRelationName(rel)),
			 version_1_0 ?
			 errdetail("The table is that of version 1.0 of the extension, and the installed library serves version 1.1.") :
			 errdetail_internal("%s", problem),
			 version_1_0 ?
			 errhint("Update the extension with ALTER EXTENSION leader UPDATE.") :
			 errhint("Undo the change to the table's columns.")));
}

LeaseStore *
lease_store_open(Oid ext_namespace, LOCKMODE lockmode)
{
	LeaseStore *store = palloc(sizeof(LeaseStore));
	Oid			type[LEASE_NCOLUMNS];
	char	   *problem;

	store->rel = table_open(lease_relation(ext_namespace, "leader_lease"), lockmode);
	store->pkey = lease_relation(ext_namespace, "leader_lease_pkey");
	store->ext_namespace = ext_namespace;
	store->lockmode = lockmode;
	store->wrote = false;
	problem = map_columns(store->rel, lease_columns, LEASE_NCOLUMNS, store->attnum, type);
	if (problem != NULL)
		shape_error(store->rel, problem, is_version_1_0_shape(store->attnum, type));
	return store;
}

/* A store that wrote keeps its table lock to the end of the transaction. */
void
lease_store_close(LeaseStore *store)
{
	table_close(store->rel, store->wrote ? NoLock : store->lockmode);
	pfree(store);
}

/* A role column's value: the role's Oid, InvalidOid if no role has the name. */
static Oid
role_from_column(Datum value, bool isnull)
{
	return isnull ? InvalidOid : get_role_oid(NameStr(*DatumGetName(value)), true);
}

/* Store a role in a role column, by name (NULL for a role that is gone). */
static void
role_to_column(Oid role, Datum *value, bool *isnull)
{
	char	   *rolname = OidIsValid(role) ? GetUserNameFromId(role, true) : NULL;
	Name		name;

	*isnull = rolname == NULL;
	if (rolname == NULL)
		return;
	name = palloc0(NAMEDATALEN);
	namestrcpy(name, rolname);
	*value = NameGetDatum(name);
}

static void
row_from_tuple(LeaseStore *store, HeapTuple tuple, LeaseRow *row)
{
	TupleDesc	desc = RelationGetDescr(store->rel);
	Datum	   *values = palloc(desc->natts * sizeof(Datum));
	bool	   *nulls = palloc(desc->natts * sizeof(bool));

	heap_deform_tuple(tuple, desc, values, nulls);
	row->found = true;
	row->tid = tuple->t_self;
	row->group = TextDatumGetCString(COLUMN(values, store, COL_GROUP_NAME));
	row->term = DatumGetInt64(COLUMN(values, store, COL_TERM));
	row->creator = role_from_column(COLUMN(values, store, COL_CREATOR_ROLE),
									COLUMN(nulls, store, COL_CREATOR_ROLE));
	row->held = !COLUMN(nulls, store, COL_HOLDER);
	if (row->held)
	{
		row->holder = TextDatumGetCString(COLUMN(values, store, COL_HOLDER));
		row->kind = strcmp(TextDatumGetCString(COLUMN(values, store, COL_HOLDER_KIND)),
						   "named") == 0 ? HOLDER_NAMED : HOLDER_SESSION;
		row->role = role_from_column(COLUMN(values, store, COL_HOLDER_ROLE),
									 COLUMN(nulls, store, COL_HOLDER_ROLE));
		row->has_pid = !COLUMN(nulls, store, COL_PID);
		row->pid = row->has_pid ? DatumGetInt32(COLUMN(values, store, COL_PID)) : 0;
		row->backend_start = COLUMN(nulls, store, COL_BACKEND_START) ? 0 :
			DatumGetTimestampTz(COLUMN(values, store, COL_BACKEND_START));
		row->acquired_at = DatumGetTimestampTz(COLUMN(values, store, COL_ACQUIRED_AT));
		row->renewed_at = DatumGetTimestampTz(COLUMN(values, store, COL_RENEWED_AT));
		row->expires_at = DatumGetTimestampTz(COLUMN(values, store, COL_EXPIRES_AT));
	}
	pfree(values);
	pfree(nulls);
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
	ScanKeyInit(&key, store->attnum[COL_GROUP_NAME], BTEqualStrategyNumber, F_TEXTEQ,
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
			row_from_tuple(store, tuple, row);
		systable_endscan(scan);
	}
}

/*
 * Add index entries for a new heap tuple: in every index, or (after an
 * update that changed only summarized columns) in the summarizing ones.
 * It is never flagged as an UPDATE: that flag only feeds an index hint, and
 * computing the hint needs a range table this bare executor state lacks.
 */
static void
insert_index_entries(Relation rel, HeapTuple tuple, bool only_summarizing)
{
	EState	   *estate = CreateExecutorState();
	ResultRelInfo *result_rel = makeNode(ResultRelInfo);
	TupleTableSlot *slot;

	InitResultRelInfo(result_rel, rel, 1, NULL, 0);
	ExecOpenIndices(result_rel, false);
	slot = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsHeapTuple);
	ExecStoreHeapTuple(tuple, slot, false);
	(void) leader_insert_index_tuples(result_rel, slot, estate, only_summarizing);
	ExecDropSingleTupleTableSlot(slot);
	ExecCloseIndices(result_rel);
	FreeExecutorState(estate);
}

/* Write tuple over the version at *tid (if given) or as a new row; returns its tid. */
static ItemPointerData
write_tuple(Relation rel, ItemPointer tid, HeapTuple tuple)
{
	ItemPointerData written;
	TU_UpdateIndexes update_indexes = TU_All;

	if (tid != NULL)
		leader_simple_heap_update(rel, tid, tuple, &update_indexes);
	else
		simple_heap_insert(rel, tuple);
	if (update_indexes != TU_None)
		insert_index_entries(rel, tuple, update_indexes == TU_Summarizing);
	written = tuple->t_self;
	heap_freetuple(tuple);
	CommandCounterIncrement();
	return written;
}

/* Insert or update the group's row from *row, and make it visible. */
void
lease_store_write(LeaseStore *store, LeaseRow *row)
{
	TupleDesc	desc = RelationGetDescr(store->rel);
	Datum	   *values = palloc0(desc->natts * sizeof(Datum));
	bool	   *nulls = palloc(desc->natts * sizeof(bool));

	/* dropped columns, and the holder's columns of a vacant row, stay NULL */
	memset(nulls, true, desc->natts * sizeof(bool));
	COLUMN(values, store, COL_GROUP_NAME) = CStringGetTextDatum(row->group);
	COLUMN(nulls, store, COL_GROUP_NAME) = false;
	COLUMN(values, store, COL_TERM) = Int64GetDatum(row->term);
	COLUMN(nulls, store, COL_TERM) = false;
	role_to_column(row->creator, &COLUMN(values, store, COL_CREATOR_ROLE),
				   &COLUMN(nulls, store, COL_CREATOR_ROLE));
	if (row->held)
	{
		COLUMN(values, store, COL_HOLDER) = CStringGetTextDatum(row->holder);
		COLUMN(values, store, COL_HOLDER_KIND) =
			CStringGetTextDatum(row->kind == HOLDER_NAMED ? "named" : "session");
		role_to_column(row->role, &COLUMN(values, store, COL_HOLDER_ROLE),
					   &COLUMN(nulls, store, COL_HOLDER_ROLE));
		COLUMN(values, store, COL_PID) = Int32GetDatum(row->pid);
		COLUMN(nulls, store, COL_PID) = !row->has_pid;
		COLUMN(values, store, COL_BACKEND_START) = TimestampTzGetDatum(row->backend_start);
		COLUMN(nulls, store, COL_BACKEND_START) = row->kind == HOLDER_NAMED;
		COLUMN(values, store, COL_ACQUIRED_AT) = TimestampTzGetDatum(row->acquired_at);
		COLUMN(values, store, COL_RENEWED_AT) = TimestampTzGetDatum(row->renewed_at);
		COLUMN(values, store, COL_EXPIRES_AT) = TimestampTzGetDatum(row->expires_at);
		COLUMN(nulls, store, COL_HOLDER) = false;
		COLUMN(nulls, store, COL_HOLDER_KIND) = false;
		COLUMN(nulls, store, COL_ACQUIRED_AT) = false;
		COLUMN(nulls, store, COL_RENEWED_AT) = false;
		COLUMN(nulls, store, COL_EXPIRES_AT) = false;
	}

	row->tid = write_tuple(store->rel, row->found ? &row->tid : NULL,
						   heap_form_tuple(desc, values, nulls));
	row->found = true;
	store->wrote = true;
	pfree(values);
	pfree(nulls);
}

/* Delete the group's row (read under its group lock), and make that visible. */
void
lease_store_delete(LeaseStore *store, LeaseRow *row)
{
	simple_heap_delete(store->rel, &row->tid);
	store->wrote = true;
	row->found = false;
	CommandCounterIncrement();
}

/*
 * Call visit(row, arg) for each row the scan returns whose leadership is
 * (held) or is not (!held) recorded, until it returns false; ends the scan.
 */
static void
visit_rows(LeaseStore *store, SysScanDesc scan, bool held, LeaseVisitor visit, void *arg)
{
	HeapTuple	tuple;

	while (HeapTupleIsValid(tuple = systable_getnext(scan)))
	{
		LeaseRow	row;

		memset(&row, 0, sizeof(LeaseRow));
		row_from_tuple(store, tuple, &row);
		if (row.held == held && !visit(&row, arg))
			break;
	}
	systable_endscan(scan);
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

	visit_rows(store, systable_beginscan(store->rel, held_index, true, snapshot, 0, NULL),
			   true, visit, arg);
	UnregisterSnapshot(snapshot);
}

/*
 * Scan the rows of the groups creator created (through the index on
 * creator_role), or every row when creator is InvalidOid.
 */
static SysScanDesc
scan_created_by(LeaseStore *store, Oid creator, Snapshot snapshot, ScanKey key)
{
	if (!OidIsValid(creator))
		return systable_beginscan(store->rel, InvalidOid, false, snapshot, 0, NULL);
	ScanKeyInit(key, store->attnum[COL_CREATOR_ROLE], BTEqualStrategyNumber, F_NAMEEQ,
				CStringGetDatum(GetUserNameFromId(creator, false)));
	return systable_beginscan(store->rel,
							  lease_relation(store->ext_namespace, "leader_lease_creator_role_idx"),
							  true, snapshot, 1, key);
}

/*
 * Does the table hold at least n groups (created by creator, if valid)?  A
 * table with too few pages to hold n rows is not scanned at all, so the
 * check costs nothing until the table nears the cap; after that it reads
 * at most n rows (a role's through the index on creator_role).  The count
 * is of the latest committed rows and this transaction's own.
 */
bool
lease_store_has_at_least(LeaseStore *store, Oid creator, int64 n)
{
	Snapshot	snapshot;
	ScanKeyData key;
	SysScanDesc scan;
	int64		count = 0;

	if ((int64) RelationGetNumberOfBlocks(store->rel) * MaxHeapTuplesPerPage < n)
		return false;
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	scan = scan_created_by(store, creator, snapshot, &key);
	while (count < n && HeapTupleIsValid(systable_getnext(scan)))
		count++;
	systable_endscan(scan);
	UnregisterSnapshot(snapshot);
	return count >= n;
}

/*
 * Call visit for each vacant group (created by creator, if valid) until it
 * returns false.  It may change the table: the scan sees the rows as they
 * were when it began.
 */
void
lease_store_visit_vacant(LeaseStore *store, Oid creator, LeaseVisitor visit, void *arg)
{
	Snapshot	snapshot = RegisterSnapshot(GetLatestSnapshot());
	ScanKeyData key;

	visit_rows(store, scan_created_by(store, creator, snapshot, &key), false, visit, arg);
	UnregisterSnapshot(snapshot);
}

/* Open leader_term_floor, and find its term column. */
static Relation
term_floor_open(LeaseStore *store, LOCKMODE lockmode, AttrNumber *attnum)
{
	Relation	rel = table_open(lease_relation(store->ext_namespace, "leader_term_floor"),
								 lockmode);
	Oid			type;
	char	   *problem = map_columns(rel, floor_columns, lengthof(floor_columns),
									  attnum, &type);

	if (problem != NULL)
		shape_error(rel, problem, false);
	return rel;
}

/*
 * The highest term in leader_term_floor (0 when it is empty), and where it
 * is in *tid (invalid when empty).  Read like the leases, with SnapshotSelf.
 */
static int64
term_floor_scan(Relation rel, AttrNumber attnum, ItemPointer tid)
{
	TableScanDesc scan = leader_table_beginscan(rel, SnapshotSelf);
	HeapTuple	tuple;
	int64		floor = 0;

	ItemPointerSetInvalid(tid);
	while ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		bool		isnull;
		Datum		term = heap_getattr(tuple, attnum, RelationGetDescr(rel), &isnull);

		if (!isnull && (!ItemPointerIsValid(tid) || DatumGetInt64(term) > floor))
		{
			floor = DatumGetInt64(term);
			*tid = tuple->t_self;
		}
	}
	table_endscan(scan);
	return floor;
}

/* The database's term floor: no group created anew may take a term at or below it. */
int64
lease_store_term_floor(LeaseStore *store)
{
	AttrNumber	attnum;
	ItemPointerData tid;
	Relation	rel = term_floor_open(store, AccessShareLock, &attnum);
	int64		floor = term_floor_scan(rel, attnum, &tid);

	table_close(rel, AccessShareLock);
	return floor;
}

/*
 * Raise the term floor to term, if it is lower.  The caller holds the
 * database's term floor lock, so the version read is the one written over.
 */
void
lease_store_raise_term_floor(LeaseStore *store, int64 term)
{
	AttrNumber	attnum;
	ItemPointerData tid;
	Relation	rel = term_floor_open(store, RowExclusiveLock, &attnum);
	TupleDesc	desc = RelationGetDescr(rel);
	Datum	   *values;
	bool	   *nulls;

	if (term_floor_scan(rel, attnum, &tid) >= term && ItemPointerIsValid(&tid))
	{
		table_close(rel, RowExclusiveLock);
		return;
	}
	values = palloc0(desc->natts * sizeof(Datum));
	nulls = palloc(desc->natts * sizeof(bool));
	memset(nulls, true, desc->natts * sizeof(bool));
	values[attnum - 1] = Int64GetDatum(term);
	nulls[attnum - 1] = false;
	(void) write_tuple(rel, ItemPointerIsValid(&tid) ? &tid : NULL,
					   heap_form_tuple(desc, values, nulls));
	table_close(rel, NoLock);
	pfree(values);
	pfree(nulls);
}
