// pool-worker.js: a leader-only worker on a pg.Pool, with a NAMED holder (WORKER_NAME).
//
// A named leadership belongs to the name, not to a connection: any pooled connection
// (or one behind PgBouncer in transaction mode) may renew or release it, and it ends only
// by release, leader_force_release or its TTL. So a crashed worker is replaced after
// about the TTL, not at once; use worker.js's session-bound holder where that matters.
// Renewals go through pool.query, fenced work through pool.connect(); the events come on
// one dedicated pg.Client, since LISTEN needs a session of its own.
//
//   PGHOST=... PGDATABASE=... LEADER_GROUP=example-worker LEADER_TTL=10 node pool-worker.js
//
// Stdout: "elected term=T", "revoked term=T", "new-leader term=T holder=H", "work term=T".
'use strict';

const pg = require('pg');
const { settings, Listener, Elector } = require('./elector');

const { group, ttl, name, workInterval } = settings();

// PG* environment variables give the connection settings.
const pool = new pg.Pool({ application_name: name });
pool.on('error', (err) => console.error(`idle pooled connection: ${err.message}`));
const listener = new Listener({ application_name: name });

const elector = new Elector({
  group,
  ttl,
  workInterval,
  holder: name, // named: whichever pooled connection calls, the holder is this name
  listener,
  query: (text, values) => pool.query(text, values),
  transaction: async (fn) => {
    const client = await pool.connect(); // any pooled connection will do
    try {
      return await fn(client);
    } finally {
      client.release(); // the pool drops it if its connection broke
    }
  },
  // The leader-only work; the elector runs it in a transaction fenced by `term`.
  work: (client, term) => client.query(
    'INSERT INTO example_work (group_name, term, worker) VALUES ($1, $2, $3)',
    [group, term, name],
  ),
});

elector.on('elected', (term) => console.log(`elected term=${term}`));
elector.on('revoked', (term) => console.log(`revoked term=${term}`));
elector.on('newLeader', (term, holder) => console.log(`new-leader term=${term} holder=${holder}`));
elector.on('work', (term) => console.log(`work term=${term}`));

async function shutdown(signal) {
  console.error(`${signal}: stepping down`);
  try {
    await elector.stop(); // releases the leadership if it holds it
    await listener.close();
    await pool.end();
  } catch (err) {
    console.error(err.message);
  }
  process.exit(0);
}
process.once('SIGTERM', shutdown);
process.once('SIGINT', shutdown);

elector.start();
