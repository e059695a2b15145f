// worker.js: a leader-only worker on ONE pg.Client, with a session-bound leadership.
//
// The client LISTENs on leader_changed, holds the leadership (it ends the instant this
// session ends, so a crashed worker is replaced in milliseconds), renews it every ttl/3,
// and does the leader-only work: every WORK_INTERVAL, a transaction fenced by its term.
// Its holder shows as "WORKER_NAME (pid N)" (application_name and backend pid).
//
//   PGHOST=... PGDATABASE=... LEADER_GROUP=example-worker LEADER_TTL=10 node worker.js
//
// Stdout: "elected term=T", "revoked term=T", "new-leader term=T holder=H", "work term=T".
'use strict';

const { settings, Listener, Elector } = require('./elector');

const { group, ttl, name, workInterval } = settings();

// The one session: listener, leader and worker. PG* environment variables do the rest.
const session = new Listener({ application_name: name });

const elector = new Elector({
  group,
  ttl,
  workInterval,
  holder: null, // session-bound: the leader is this session
  listener: session,
  query: (text, values) => session.query(text, values),
  transaction: (fn) => fn(session), // the same session (the elector runs one thing at a time)
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
    await session.close();
  } catch (err) {
    console.error(err.message);
  }
  process.exit(0);
}
process.once('SIGTERM', shutdown);
process.once('SIGINT', shutdown);

elector.start();
