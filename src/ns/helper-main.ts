// Entry point of the hidden helper when running from source (`bun
// src/ns/helper-main.ts __ns-helper …`). The compiled binary needs no such
// file: there process.execPath is the binary and main.ts dispatches.
import { runHiddenCommand } from "./helper.ts";

if (!(await runHiddenCommand(process.argv.slice(2)))) {
  process.stderr.write("helper-main.ts: expected __ns-helper attach|run …\n");
  process.exit(2);
}
