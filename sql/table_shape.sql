-- A changed leader_lease (as a superuser may change it) is detected when the
-- functions open it: a clear error naming the table and the column, never a
-- misread row; undoing the change makes them work again.  Dropped columns do
-- no harm.
SELECT leader_try_acquire('shape', '1 hour', 'svc') AS acquired;

-- An extra column.
ALTER TABLE leader_lease ADD COLUMN note text;
SELECT leader_try_acquire('shape', '1 hour', 'svc');
SELECT leader_is_leader('shape', 'svc');
ALTER TABLE leader_lease DROP COLUMN note;
SELECT leader_try_acquire('shape', '1 hour', 'svc') AS renewed_with_a_dropped_column;

-- A column of another type.
ALTER TABLE leader_lease ALTER COLUMN creator_role TYPE text;
SELECT leader_term('shape', 'svc');
ALTER TABLE leader_lease ALTER COLUMN creator_role TYPE name;
SELECT leader_term('shape', 'svc') AS term;

-- A missing column.
ALTER TABLE leader_lease RENAME COLUMN creator_role TO made_by;
SELECT leader_current('shape');
ALTER TABLE leader_lease RENAME COLUMN made_by TO creator_role;
SELECT leader_current('shape') AS current;

-- A column dropped and added again sits elsewhere in the row: it is found by
-- its name, and rows are read and written through it.
ALTER TABLE leader_lease DROP COLUMN creator_role, ADD COLUMN creator_role name;
CREATE INDEX leader_lease_creator_role_idx ON leader_lease (creator_role);
UPDATE leader_lease SET creator_role = current_user WHERE group_name = 'shape';
SELECT attname, attnum FROM pg_attribute
WHERE attrelid = 'leader_lease'::regclass AND attname IN ('creator_role', 'expires_at');
SELECT leader_try_acquire('shape', '1 hour', 'svc') AS renewed,
       leader_try_acquire('shape 2', '1 hour', 'svc') AS created;
SELECT group_name, holder, renewed_at >= acquired_at AS renewed_at_set,
       expires_at > renewed_at AS expires_after_renewal, creator_role = current_user AS creator_kept
FROM leader_lease WHERE group_name IN ('shape', 'shape 2') ORDER BY 1;
SELECT leader_release('shape', 'svc') AS released, leader_release('shape 2', 'svc') AS released_2;

-- The term floor table, read when a group is created, is checked the same way.
ALTER TABLE leader_term_floor RENAME COLUMN term TO floor;
SELECT leader_try_acquire('shape 3', '1 hour', 'svc');
ALTER TABLE leader_term_floor RENAME COLUMN floor TO term;
SELECT leader_try_acquire('shape 3', '1 hour', 'svc') AS acquired,
       leader_release('shape 3', 'svc') AS released;
