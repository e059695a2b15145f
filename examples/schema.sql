-- examples/schema.sql: the table the example workers write to, as the work they do
-- only while they lead. Each row is one unit of work, written in a transaction that
-- first calls leader_fence(group, term): a worker whose leadership has ended gets an
-- error (SQLSTATE 55000) instead of writing.
--
--   psql -f examples/schema.sql        (once per database, after CREATE EXTENSION leader)
CREATE TABLE example_work (
    id         bigserial PRIMARY KEY,
    group_name text        NOT NULL,
    term       bigint      NOT NULL,
    worker     text        NOT NULL,
    done_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);
