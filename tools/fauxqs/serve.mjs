// serve.mjs starts fauxqs (an SQS emulator speaking the JSON protocol) for the
// tests, on 127.0.0.1 only: fauxqs's own CLI listens on every interface, and a
// test server must not be reachable from the network.
//
// Usage: node serve.mjs [port]   (port 0 or absent: any free port)
// It prints one line, "port=<n>", once it accepts connections, and stops
// cleanly on SIGTERM or SIGINT.
//
// scripts/test copies this file next to the node_modules it installs under
// .tools/fauxqs (ignored by git), so the bare import below resolves there.
import { buildApp } from "fauxqs";

const port = Number.parseInt(process.argv[2] ?? "0", 10);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`serve.mjs: bad port ${process.argv[2]}`);
  process.exit(2);
}

const app = buildApp({ logger: false, defaultRegion: process.env.AWS_REGION ?? "us-east-1" });
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
