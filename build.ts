// Builds the single-file binary ./slirpnetstack with `bun build --compile`.
// The version and UTC build time are stamped in (a built binary's version
// never says DEV, and its time says UTC).
import { $ } from "bun";
import { rmSync, symlinkSync } from "node:fs";
import { basename, dirname } from "node:path";

const root = import.meta.dir;
const outfile = process.argv[2] ?? `${root}/slirpnetstack`;

async function describeVersion(): Promise<string> {
  const r = await $`git -C ${root} describe --tags --always --dirty=-dirty`.quiet().nothrow();
  const pkg = (await Bun.file(`${root}/package.json`).json()) as { version: string };
  const rev = r.exitCode === 0 ? r.stdout.toString().trim() : "";
  return rev ? `${pkg.version}-${rev}` : pkg.version;
}

function buildTime(d: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())}-${p(d.getUTCHours())}:${p(d.getUTCMinutes())}UTC`;
}

const version = await describeVersion();
const time = buildTime(new Date());
// A .env file or bunfig.toml in the user's working directory must not
// change the binary's environment or runtime. --bytecode ships the program
// already compiled to JavaScriptCore bytecode: parsing it was most of the
// start-up, paid twice because the binary re-executes itself once
// (runtime-env.ts); measured 48 -> 20 ms from exec to "started".
const result = await $`${process.execPath} build --compile --bytecode --format=esm --minify-syntax --sourcemap=none \
  --no-compile-autoload-dotenv --no-compile-autoload-bunfig \
  --define ${`BUILD_VERSION=${JSON.stringify(version)}`} \
  --define ${`BUILD_TIME=${JSON.stringify(time)}`} \
  ${root}/src/main.ts --outfile ${outfile}`
  .quiet()
  .nothrow();
if (result.exitCode !== 0) {
  process.stderr.write(result.stderr.toString() + result.stdout.toString());
  process.exit(1);
}
// slirp4netns mode: the binary started under that name (src/slirp4netns/).
const alias = `${dirname(outfile)}/slirp4netns`;
rmSync(alias, { force: true });
symlinkSync(basename(outfile), alias);
process.stderr.write(`built ${outfile} (version ${version}, ${time}) and ${alias} -> ${basename(outfile)}\n`);
