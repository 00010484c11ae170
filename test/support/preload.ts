// Loaded before every test file (bunfig.toml [test] preload): whatever a
// file left running is destroyed after it, so namespaces and processes
// never outlive the file that made them.
import { afterAll } from "bun:test";
import { destroyAll } from "./cleanup.ts";

afterAll(async () => {
  await destroyAll();
});
