// kafkajs.js - scripts/bench's Node.js peer: the usual kafkajs worker,
// eachMessage and JSON.parse, no dedupe.  It writes what tests/bench/stamp.c
// writes (see there) to OUT, at every 1000th job, at each latency sample
// ("lat-" event ids) and when stopped (SIGTERM).
//
// usage: node kafkajs.js BOOTSTRAP GROUP OUT TOPIC...
// NODE_PATH names the node_modules holding kafkajs (scripts/bench installs it).
'use strict';
const fs = require('fs');
const { Kafka, logLevel } = require('kafkajs');

const [bootstrap, groupId, out, ...topics] = process.argv.slice(2);
let count = 0, first = 0, last = 0;
const lat = [];

function write() {
  const lines = [`${count} ${first} ${last}`];
  for (const [ts, at] of lat) lines.push(`${ts} ${at}`);
  fs.writeFileSync(out + '.tmp', lines.join('\n') + '\n');
  fs.renameSync(out + '.tmp', out);
}

async function main() {
  const kafka = new Kafka({ clientId: 'bench-kafkajs', brokers: bootstrap.split(','),
    logLevel: logLevel.ERROR });
  // The one setting not left at kafkajs's default: how long the broker may
  // hold an empty fetch (5 s by default), as kpool's fetch.wait.max.ms.
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 100 });
  await consumer.connect();
  for (const topic of topics) await consumer.subscribe({ topic, fromBeginning: true });
  const stop = async () => {
    try { await consumer.disconnect(); } finally { write(); process.exit(0); }
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  await consumer.run({
    eachMessage: async ({ message }) => {
      const now = Date.now();
      const job = JSON.parse(message.value.toString());
      const id = String(job.eventId);
      if (id.startsWith('lat-')) {
        lat.push([Number(message.timestamp), now]);
        write();
        return;
      }
      if (!id.startsWith('bench-')) return;
      if (count++ === 0) first = now;
      last = now;
      if (count % 1000 === 0) write();
    },
  });
}

main().catch((e) => { console.error(`kafkajs: ${e.message}`); process.exit(1); });
