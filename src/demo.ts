// `npm start`: an offline demonstration of the main job. A web server runs
// on the host's 127.0.0.1; ./slirpnetstack starts a fresh network namespace
// (run mode) whose command fetches that page through the stack, via the
// remote forward 10.0.2.2:PORT -> 127.0.0.1:PORT, then pings the stack and
// resolves nothing from outside: no network is needed.
import { join } from "node:path";

const root = join(import.meta.dir, "..");
const binary = join(root, "slirpnetstack");

const server = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  fetch(req) {
    return new Response(`Hello from the host! You reached ${new URL(req.url).pathname} through slirpnetstack.\n`);
  },
});
const port = server.port;

// The command inside the namespace: Bun itself (it is here anyway), so the
// demo needs no curl or ping on the machine.
const guest = `
const os = require("node:os");
const addrs = Object.entries(os.networkInterfaces())
  .flatMap(([name, list]) => (list ?? []).map((a) => name + " " + a.address + "/" + a.netmask))
  .join("\\n  ");
console.log("inside the namespace, interfaces:\\n  " + addrs);
const t0 = performance.now();
const res = await fetch("http://10.0.2.2:${port}/demo");
console.log("GET http://10.0.2.2:${port}/demo -> " + res.status + " in " + (performance.now() - t0).toFixed(1) + " ms: " + (await res.text()).trim());
`;

const args = ["-R", `${port}`, "-enable-routing=false", "--", process.execPath, "-e", guest];
process.stdout.write(`host: serving http://127.0.0.1:${port}/\n`);
process.stdout.write(`running: ./slirpnetstack ${args.slice(0, 3).join(" ")} -- bun -e <fetch script>\n\n`);
const proc = Bun.spawn([binary, ...args], { stdout: "inherit", stderr: "inherit", stdin: "ignore" });
const code = await proc.exited;
server.stop(true);
process.stdout.write(`\nslirpnetstack exited with the command's status: ${code}\n`);
if (code !== 0) {
  process.stdout.write("Run mode needs user namespaces and an accessible /dev/net/tun; see the README.\n");
}
process.exit(code);
