// The Node.js amqplib contender of the RabbitMQ benchmark, run by benchmarks/_amqplib.py:
//
//   node amqp.js publish|consume URL EXCHANGE QUEUE COUNT
//
// It declares what the Python contenders declare (a durable topic exchange, one durable
// classic queue bound by "bench.tick"), then either publishes COUNT persistent, mandatory
// messages of about 1 KiB of JSON on a confirm channel, 256 in flight (windows of 256
// publishes awaited together, as asyncio.gather does for the Python contenders), or consumes
// COUNT messages with prefetch 256, JSON.parse of each body and an ack after it. It prints
// one JSON line: {"rate": messages per second}. Publish is timed from the first publish to
// the last confirm; consume from the first message handled to the last, (N - 1) / elapsed.
"use strict";

const crypto = require("node:crypto");
const { once } = require("node:events");
const amqp = require("amqplib");

const ROUTING_KEY = "bench.tick";
const WINDOW = 256;
const PAYLOAD = "x".repeat(900); // with the envelope: about 1 KiB, as for the Python contenders

function envelope(n) {
  return {
    specversion: "1.0",
    id: crypto.randomUUID().replaceAll("-", ""),
    source: "bench",
    type: ROUTING_KEY,
    time: new Date().toISOString(),
    datacontenttype: "application/json",
    data: { n, sent_at: Date.now() / 1000, payload: PAYLOAD },
  };
}

async function declare(channel, exchange, queue) {
  await channel.assertExchange(exchange, "topic", { durable: true });
  await channel.assertQueue(queue, { durable: true });
  await channel.bindQueue(queue, exchange, ROUTING_KEY);
}

async function publish(connection, exchange, queue, count) {
  const channel = await connection.createConfirmChannel();
  await declare(channel, exchange, queue);
  const options = { persistent: true, mandatory: true, contentType: "application/json" };
  const publishOne = async (n) => {
    const body = Buffer.from(JSON.stringify(envelope(n)));
    let written;
    const confirmed = new Promise((resolve, reject) => {
      written = channel.publish(exchange, ROUTING_KEY, body, options, (err) =>
        err ? reject(err) : resolve(),
      );
    });
    if (!written) await once(channel, "drain");
    await confirmed;
  };
  const start = performance.now();
  for (let first = 0; first < count; first += WINDOW) {
    const window = [];
    for (let n = first; n < Math.min(first + WINDOW, count); n++) window.push(publishOne(n));
    await Promise.all(window);
  }
  const elapsed = (performance.now() - start) / 1000;
  await channel.close();
  return count / elapsed;
}

async function consume(connection, exchange, queue, count) {
  const channel = await connection.createChannel();
  await channel.prefetch(WINDOW);
  await declare(channel, exchange, queue);
  let handled = 0;
  let first = 0;
  let last = 0;
  let finish;
  const done = new Promise((resolve) => (finish = resolve));
  const { consumerTag } = await channel.consume(
    queue,
    (message) => {
      JSON.parse(message.content.toString());
      const now = performance.now();
      if (handled === 0) first = now;
      handled += 1;
      channel.ack(message);
      if (handled === count) {
        last = now;
        finish();
      }
    },
    { noAck: false },
  );
  await done;
  await channel.cancel(consumerTag);
  await channel.close();
  return (count - 1) / Math.max((last - first) / 1000, 1e-9);
}

async function main() {
  const [mode, url, exchange, queue, countText] = process.argv.slice(2);
  const count = Number.parseInt(countText, 10);
  const run = { publish, consume }[mode];
  if (!run || !url || !exchange || !queue || !(count > 1)) {
    throw new Error("usage: node amqp.js publish|consume URL EXCHANGE QUEUE COUNT");
  }
  const connection = await amqp.connect(url);
  try {
    const rate = await run(connection, exchange, queue, count);
    process.stdout.write(JSON.stringify({ rate }) + "\n");
  } finally {
    await connection.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
