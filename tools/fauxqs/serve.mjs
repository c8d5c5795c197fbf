// serve.mjs starts fauxqs (an SQS emulator speaking the JSON protocol) for the
// tests, on 127.0.0.1 only: fauxqs's own CLI listens on every interface, and a
// test server must not be reachable from the network.
//
// Usage: node serve.mjs [port]   (port 0 or absent: any free port)
// It prints one line, "port=<n>", once it accepts connections, and stops
// cleanly on SIGTERM or SIGINT.
//
// scripts/test copies this file next to the node_modules it installs under
// .tools/fauxqs (ignored by git), so the imports below resolve there.
import { buildApp } from "fauxqs";

// The stores are not in the package's exports; a file URL reaches them.
const dist = new URL("./node_modules/fauxqs/dist/", import.meta.url);
const { SqsStore } = await import(new URL("sqs/sqsStore.js", dist).href);
const { SnsStore } = await import(new URL("sns/snsStore.js", dist).href);
const { S3Store } = await import(new URL("s3/s3Store.js", dist).href);

const port = Number.parseInt(process.argv[2] ?? "0", 10);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`serve.mjs: bad port ${process.argv[2]}`);
  process.exit(2);
}

// By default fauxqs names queues http://sqs.<region>.localhost:<port>/...,
// a host that does not resolve; with no host set it uses the request's Host,
// so queue URLs are http://127.0.0.1:<port>/<account>/<name> and usable as
// endpoints, like real queue URLs.
const sqsStore = new SqsStore();
sqsStore.host = "";
const app = buildApp({
  logger: false,
  defaultRegion: process.env.AWS_REGION ?? "us-east-1",
  stores: { sqsStore, snsStore: new SnsStore(), s3Store: new S3Store() },
});

// fauxqs finds a queue only by its exact URL. A client configured the
// production way (an AWS queue URL, and AWS_ENDPOINT_URL_SQS pointing here)
// sends https://sqs.<region>.amazonaws.com/<account>/<name>; find such queues
// by name, as the URL's path names them.
app.addHook("preHandler", async (request) => {
  const body = request.body;
  if (body === null || typeof body !== "object" || typeof body.QueueUrl !== "string") return;
  if (sqsStore.getQueue(body.QueueUrl)) return;
  let name;
  try {
    name = new URL(body.QueueUrl).pathname.split("/").filter(Boolean).pop();
  } catch {
    return;
  }
  const queue = name && sqsStore.getQueueByName(name);
  if (queue) body.QueueUrl = queue.url;
});
const address = await app.listen({ host: "127.0.0.1", port });
console.log(`port=${new URL(address).port}`);

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  await app.close();
  process.exit(0);
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
